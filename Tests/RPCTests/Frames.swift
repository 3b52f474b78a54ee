import ProtoRuntime
import RPC
import SessionAPI

/// Builds client frames from the generated envelope types, so bad-input tests
/// control every byte the server sees.
enum Frames {
    static let emptyCall = GrpcTesting.TestService.Method.emptyCall.path
    static let unaryCall = GrpcTesting.TestService.Method.unaryCall.path
    static let streamingOutputCall = GrpcTesting.TestService.Method.streamingOutputCall.path

    /// The envelope's bytes behind their 4-byte big-endian length.
    static func frame(_ envelope: SessionrpcV1.Envelope) -> [UInt8] {
        frame(body: envelope.serializedBytes())
    }

    static func frame(body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendFrameHeader(body.count, to: &out)
        return out + body
    }

    static func request(
        _ callID: UInt64, _ method: String, payload: [UInt8] = [], timeoutMicros: UInt64 = 0,
        metadata: [(key: String, value: [UInt8])] = []
    ) -> SessionrpcV1.Envelope {
        var request = SessionrpcV1.Request()
        request.method = method
        request.payload = payload
        request.timeoutMicros = timeoutMicros
        request.metadata = metadata.map { entry in
            var e = SessionrpcV1.MetadataEntry()
            e.key = entry.key
            e.value = entry.value
            return e
        }
        var envelope = SessionrpcV1.Envelope()
        envelope.callId = callID
        envelope.kind = .request(request)
        return envelope
    }

    static func cancel(_ callID: UInt64) -> SessionrpcV1.Envelope {
        var envelope = SessionrpcV1.Envelope()
        envelope.callId = callID
        envelope.kind = .cancel(SessionrpcV1.Cancel())
        return envelope
    }

    static func ping(_ opaque: UInt64) -> SessionrpcV1.Envelope {
        var ping = SessionrpcV1.Ping()
        ping.opaque = opaque
        var envelope = SessionrpcV1.Envelope()
        envelope.kind = .ping(ping)
        return envelope
    }

    static func goAway() -> SessionrpcV1.Envelope {
        var envelope = SessionrpcV1.Envelope()
        envelope.kind = .goAway(SessionrpcV1.GoAway())
        return envelope
    }

    /// A length-delimited protobuf field, written by hand so that tests can
    /// put bytes in a `string` field that a Swift `String` cannot carry
    /// through protobuf-c (an embedded NUL).
    static func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] {
        var out = varint(UInt64(number << 3 | 2))
        out += varint(UInt64(bytes.count))
        return out + bytes
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        return out + [UInt8(v)]
    }

    /// A Request envelope from raw method and metadata-key bytes.
    static func rawRequest(_ callID: UInt64, method: [UInt8], metadataKey: [UInt8]? = nil) -> [UInt8] {
        var request = field(1, method)
        if let metadataKey {
            request += field(3, field(1, metadataKey) + field(2, Array("v".utf8)))
        }
        return frame(body: [0x08] + varint(callID) + field(2, request))
    }

    /// A `SimpleRequest` asking for `responseSize` bytes, carrying `bodySize` bytes.
    static func unaryPayload(responseSize: Int32, bodySize: Int = 0) -> [UInt8] {
        var request = GrpcTesting.SimpleRequest()
        request.responseSize = responseSize
        if bodySize > 0 {
            var payload = GrpcTesting.Payload()
            payload.body = [UInt8](repeating: 0x5A, count: bodySize)
            request.payload = payload
        }
        return request.serializedBytes()
    }

    /// A `StreamingOutputCallRequest` for messages of `sizes`, each after `intervalUs`.
    static func streamingPayload(sizes: [Int32], intervalUs: Int32 = 0) -> [UInt8] {
        GrpcTesting.StreamingOutputCallRequest.with(sizes: sizes, intervalUs: intervalUs).serializedBytes()
    }
}

extension GrpcTesting.StreamingOutputCallRequest {
    static func with(sizes: [Int32], intervalUs: Int32 = 0) -> Self {
        var request = Self()
        request.responseParameters = sizes.map { size in
            var p = GrpcTesting.ResponseParameters()
            p.size = size
            p.intervalUs = intervalUs
            return p
        }
        return request
    }
}

extension SessionrpcV1.Envelope {
    var goAway: SessionrpcV1.GoAway? {
        if case .goAway(let g)? = kind { return g }
        return nil
    }

    var response: SessionrpcV1.Response? {
        if case .response(let r)? = kind { return r }
        return nil
    }
}

extension SessionrpcV1.Response {
    var code: RPCStatusCode { RPCStatusCode(wireValue: statusCode) }

    var payload: [UInt8]? {
        if case .payload(let p)? = result { return p }
        return nil
    }
}

extension RPCError {
    /// The code of any error a call threw (`nil` for a non-RPC error).
    static func code(of error: (any Error)?) -> RPCStatusCode? {
        (error as? RPCError)?.code
    }
}
