import ProtoRuntime
import RPCProtoC

/// Encodes and decodes envelopes (see `Protos/rpc_envelope.proto`) straight
/// to and from protobuf-c structs, borrowing payload bytes instead of
/// copying them: this is the hot path of every call.
package enum Wire {
    /// A metadata entry as it travels: key and raw value bytes.
    package typealias RawEntry = (key: String, value: [UInt8])

    /// One decoded envelope. Payload buffers point into the frame being
    /// decoded and are valid only inside the `decode` closure.
    package enum Envelope {
        case request(callID: UInt64, method: String, timeoutMicros: UInt64, metadata: [RawEntry], payload: UnsafeRawBufferPointer)
        case streamMessage(callID: UInt64, payload: UnsafeRawBufferPointer, initialMetadata: [RawEntry])
        case response(callID: UInt64, code: UInt32, message: String, payload: UnsafeRawBufferPointer?, initialMetadata: [RawEntry], trailingMetadata: [RawEntry])
        /// A request whose method name or metadata keys are not valid text
        /// (invalid UTF-8, an embedded NUL): refused on its own call id.
        case invalidRequest(callID: UInt64, reason: String)
        case cancel(callID: UInt64)
        case ping(opaque: UInt64)
        case pong(opaque: UInt64)
        case goAway(lastCallID: UInt64, code: UInt32, reason: String)
    }

    /// Why a frame is not a usable envelope.
    package struct DecodeError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Decodes one frame's envelope and hands it to `body`.
    package static func decode<T>(_ frame: UnsafeRawBufferPointer, _ body: (Envelope) throws -> T) throws -> T {
        guard let env = sessionrpc__v1__envelope__unpack(&protoUnpackAllocator, frame.count, frame.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw DecodeError(description: "frame is not a valid protobuf Envelope")
        }
        defer { sessionrpc__v1__envelope__free_unpacked(env, &protoUnpackAllocator) }
        let e = env.pointee
        let callID = e.call_id
        switch e.kind_case.rawValue {
        case 2:
            guard let r = e.request?.pointee else { throw DecodeError(description: "empty request") }
            let method: String, metadata: [RawEntry]
            do {
                method = try string(r.method, "Request.method")
                metadata = try entries(r.n_metadata, r.metadata)
            } catch {
                return try body(.invalidRequest(callID: callID, reason: "\(error)"))
            }
            return try body(.request(
                callID: callID, method: method, timeoutMicros: r.timeout_micros, metadata: metadata, payload: raw(r.payload)))
        case 3:
            guard let m = e.stream_message?.pointee else { throw DecodeError(description: "empty stream message") }
            return try body(.streamMessage(callID: callID, payload: raw(m.payload), initialMetadata: try entries(m.n_initial_metadata, m.initial_metadata)))
        case 4:
            guard let r = e.response?.pointee else { throw DecodeError(description: "empty response") }
            return try body(.response(
                callID: callID, code: r.status_code, message: try string(r.status_message, "Response.status_message"),
                payload: r.result_case.rawValue == 3 ? raw(r.payload) : nil,
                initialMetadata: try entries(r.n_initial_metadata, r.initial_metadata),
                trailingMetadata: try entries(r.n_trailing_metadata, r.trailing_metadata)))
        case 5:
            return try body(.cancel(callID: callID))
        case 6:
            return try body(.ping(opaque: e.ping?.pointee.opaque ?? 0))
        case 7:
            return try body(.pong(opaque: e.pong?.pointee.opaque ?? 0))
        case 8:
            guard let g = e.go_away?.pointee else { throw DecodeError(description: "empty go-away") }
            return try body(.goAway(lastCallID: g.last_call_id, code: g.error_code, reason: try string(g.reason, "GoAway.reason")))
        default:
            throw DecodeError(description: "envelope has no known kind (field \(e.kind_case.rawValue))")
        }
    }

    private static func raw(_ b: ProtobufCBinaryData) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: b.data, count: b.len)
    }

    private static func string(_ p: UnsafeMutablePointer<CChar>?, _ field: String) throws -> String {
        do { return try ProtoC.string(p, field: field) } catch { throw DecodeError(description: error.description) }
    }

    private static func entries(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<Sessionrpc__V1__MetadataEntry>?>?) throws -> [RawEntry] {
        guard n > 0, let p else { return [] }
        var out: [RawEntry] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            guard let entry = p[i]?.pointee else { continue }
            out.append((try string(entry.key, "MetadataEntry.key"), ProtoC.bytes(entry.value)))
        }
        return out
    }

    // MARK: - Encoding (each appends one whole frame: length + envelope)

    package static func appendRequest(callID: UInt64, method: String, timeoutMicros: UInt64, metadata: RPCMetadata, payload: [UInt8], to out: inout [UInt8]) {
        let arena = ProtoArena()
        payload.withUnsafeBufferPointer { pl in
            var req = Sessionrpc__V1__Request()
            sessionrpc__v1__request__init(&req)
            req.method = arena.cString(method)
            req.timeout_micros = timeoutMicros
            setEntries(metadata, arena: arena) { req.n_metadata = $0; req.metadata = $1 }
            req.payload = borrowed(pl)
            withUnsafeMutablePointer(to: &req) { rp in
                var env = envelope(callID)
                env.kind_case = .init(rawValue: 2)
                env.request = rp
                pack(&env, to: &out)
            }
        }
    }

    package static func appendResponse(
        callID: UInt64, code: RPCStatusCode, message: String, payload: [UInt8]?,
        initialMetadata: RPCMetadata, trailingMetadata: RPCMetadata, to out: inout [UInt8]
    ) {
        let arena = ProtoArena()
        (payload ?? []).withUnsafeBufferPointer { pl in
            var res = Sessionrpc__V1__Response()
            sessionrpc__v1__response__init(&res)
            res.status_code = code.rawValue
            if !message.isEmpty { res.status_message = arena.cString(message) }
            if payload != nil {
                res.result_case = .init(rawValue: 3)
                res.payload = borrowed(pl)
            }
            setEntries(initialMetadata, arena: arena) { res.n_initial_metadata = $0; res.initial_metadata = $1 }
            setEntries(trailingMetadata, arena: arena) { res.n_trailing_metadata = $0; res.trailing_metadata = $1 }
            withUnsafeMutablePointer(to: &res) { rp in
                var env = envelope(callID)
                env.kind_case = .init(rawValue: 4)
                env.response = rp
                pack(&env, to: &out)
            }
        }
    }

    package static func appendStreamMessage(callID: UInt64, payload: [UInt8], initialMetadata: RPCMetadata, to out: inout [UInt8]) {
        let arena = ProtoArena()
        payload.withUnsafeBufferPointer { pl in
            var m = Sessionrpc__V1__StreamMessage()
            sessionrpc__v1__stream_message__init(&m)
            m.payload = borrowed(pl)
            setEntries(initialMetadata, arena: arena) { m.n_initial_metadata = $0; m.initial_metadata = $1 }
            withUnsafeMutablePointer(to: &m) { mp in
                var env = envelope(callID)
                env.kind_case = .init(rawValue: 3)
                env.stream_message = mp
                pack(&env, to: &out)
            }
        }
    }

    package static func appendCancel(callID: UInt64, reason: String, to out: inout [UInt8]) {
        let arena = ProtoArena()
        var c = Sessionrpc__V1__Cancel()
        sessionrpc__v1__cancel__init(&c)
        if !reason.isEmpty { c.reason = arena.cString(reason) }
        withUnsafeMutablePointer(to: &c) { cp in
            var env = envelope(callID)
            env.kind_case = .init(rawValue: 5)
            env.cancel = cp
            pack(&env, to: &out)
        }
    }

    package static func appendPing(opaque: UInt64, to out: inout [UInt8]) {
        var p = Sessionrpc__V1__Ping()
        sessionrpc__v1__ping__init(&p)
        p.opaque = opaque
        withUnsafeMutablePointer(to: &p) { pp in
            var env = envelope(0)
            env.kind_case = .init(rawValue: 6)
            env.ping = pp
            pack(&env, to: &out)
        }
    }

    package static func appendPong(opaque: UInt64, to out: inout [UInt8]) {
        var p = Sessionrpc__V1__Pong()
        sessionrpc__v1__pong__init(&p)
        p.opaque = opaque
        withUnsafeMutablePointer(to: &p) { pp in
            var env = envelope(0)
            env.kind_case = .init(rawValue: 7)
            env.pong = pp
            pack(&env, to: &out)
        }
    }

    package static func appendGoAway(lastCallID: UInt64, code: RPCStatusCode, reason: String, to out: inout [UInt8]) {
        let arena = ProtoArena()
        var g = Sessionrpc__V1__GoAway()
        sessionrpc__v1__go_away__init(&g)
        g.last_call_id = lastCallID
        g.error_code = code.rawValue
        if !reason.isEmpty { g.reason = arena.cString(reason) }
        withUnsafeMutablePointer(to: &g) { gp in
            var env = envelope(0)
            env.kind_case = .init(rawValue: 8)
            env.go_away = gp
            pack(&env, to: &out)
        }
    }

    // MARK: - helpers

    private static func envelope(_ callID: UInt64) -> Sessionrpc__V1__Envelope {
        var env = Sessionrpc__V1__Envelope()
        sessionrpc__v1__envelope__init(&env)
        env.call_id = callID
        return env
    }

    private static func borrowed(_ p: UnsafeBufferPointer<UInt8>) -> ProtobufCBinaryData {
        guard p.count > 0, let base = p.baseAddress else { return ProtobufCBinaryData(len: 0, data: nil) }
        // protobuf-c only reads `data` while packing.
        return ProtobufCBinaryData(len: p.count, data: UnsafeMutablePointer(mutating: base))
    }

    private static func setEntries(
        _ md: RPCMetadata, arena: ProtoArena,
        _ assign: (Int, UnsafeMutablePointer<UnsafeMutablePointer<Sessionrpc__V1__MetadataEntry>?>) -> Void
    ) {
        guard !md.isEmpty else { return }
        let ptrs = arena.allocate(UnsafeMutablePointer<Sessionrpc__V1__MetadataEntry>?.self, count: md.count)
        for (i, entry) in md.entries.enumerated() {
            let e = arena.allocate(Sessionrpc__V1__MetadataEntry.self)
            sessionrpc__v1__metadata_entry__init(e)
            e.pointee.key = arena.cString(entry.key)
            e.pointee.value = arena.binaryData(entry.value.bytes)
            (ptrs + i).initialize(to: e)
        }
        assign(md.count, ptrs)
    }

    private static func pack(_ env: inout Sessionrpc__V1__Envelope, to out: inout [UInt8]) {
        let size = sessionrpc__v1__envelope__get_packed_size(&env)
        appendFrameHeader(size, to: &out)
        withUnsafeMutablePointer(to: &env) { envelope in
            out.appendUninitialized(size) { buffer in
                let written = sessionrpc__v1__envelope__pack(envelope, buffer)
                precondition(written == size, "protobuf-c packed \(written) of \(size) bytes")
            }
        }
    }
}
