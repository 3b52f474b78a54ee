import Dispatch
import Foundation
import RPC
import SessionAPI
import SessionCore
import SessionState
import Synchronization

/// Plain HTTP on the RPC port (the preface sniffing tells HTTP from the protocol), for load
/// balancers, Kubernetes and Prometheus:
/// - `GET /healthz`: 200 while the process runs (liveness);
/// - `GET /readyz`: 200 when the store is open and sessiond is not draining or refusing a damaged
///   database, else 503 (readiness);
/// - `GET /metrics`: Prometheus text format 0.0.4, counted from the state owner's memory.
/// One request per connection; the connection closes after the answer.
final class HTTPProbes: Sendable {
    private let health: HealthProvider
    private let backend: SessionBackend
    /// Weak: the server's configuration holds this object's handler.
    private final class ServerRef: @unchecked Sendable {
        weak var value: RPCServer?
        init(_ server: RPCServer) { value = server }
    }
    private let serverRef = AtomicLazyReference<ServerRef>()
    private var server: RPCServer? { serverRef.load()?.value }
    private let started = Date()

    init(health: HealthProvider, backend: SessionBackend) {
        self.health = health
        self.backend = backend
    }

    func attach(_ server: RPCServer) { _ = serverRef.storeIfNil(ServerRef(server)) }

    var handler: RPCHTTPHandler {
        { [self] request, respond in handle(request, respond) }
    }

    private var ready: Bool { health.status(of: SessionsV1.SessionService.serviceName) == .serving }

    private func handle(_ request: RPCHTTPRequest, _ respond: @escaping @Sendable (RPCHTTPResponse) -> Void) {
        switch request.path {
        case "/healthz":
            respond(RPCHTTPResponse(status: 200, body: "ok\n"))
        case "/readyz":
            respond(ready ? RPCHTTPResponse(status: 200, body: "ready\n") : RPCHTTPResponse(status: 503, body: "not ready\n"))
        case "/metrics":
            metrics(respond)
        default:
            respond(RPCHTTPResponse(status: 404, body: "not found: GET /healthz, /readyz or /metrics\n"))
        }
    }

    private func metrics(_ respond: @escaping @Sendable (RPCHTTPResponse) -> Void) {
        guard let server else { return metrics(calls: RPCCallStats(), respond) }
        server.callStats { [self] calls in metrics(calls: calls, respond) }
    }

    private func metrics(calls: RPCCallStats, _ respond: @escaping @Sendable (RPCHTTPResponse) -> Void) {
        var text = MetricsText()
        text.gauge("sessiond_up", "1 while the process runs", 1)
        text.gauge("sessiond_ready", "1 when the store is open and calls are served", ready ? 1 : 0)
        text.gauge("sessiond_uptime_seconds", "seconds since the process started", Date().timeIntervalSince(started))
        text.gauge("sessiond_open_connections", "open RPC connections", Double(server?.connectionCount ?? 0))
        text.header("sessiond_calls_total", "calls answered, by method and status code", "counter")
        let methods = calls.methods.sorted { $0.key < $1.key }
        for (method, m) in methods {
            for (code, n) in m.codes.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                text.sample("sessiond_calls_total", ["method": method, "code": code.description], Double(n))
            }
        }
        text.header("sessiond_call_duration_seconds", "from a call's request to its answer", "histogram")
        for (method, m) in methods {
            var cumulative = 0
            for (i, bound) in RPCCallStats.bucketBounds.enumerated() {
                cumulative += m.buckets[i]
                text.sample("sessiond_call_duration_seconds_bucket", ["method": method, "le": "\(bound)"], Double(cumulative))
            }
            text.sample("sessiond_call_duration_seconds_bucket", ["method": method, "le": "+Inf"], Double(m.count))
            text.sample("sessiond_call_duration_seconds_sum", ["method": method], m.seconds)
            text.sample("sessiond_call_duration_seconds_count", ["method": method], Double(m.count))
        }
        let partitions = backend.partitions
        text.gauge("sessiond_tenants_owned", "tenants whose partition this instance serves", Double(partitions.count))
        text.header("sessiond_tenants_lost_total", "tenants this instance owned and lost to another (PostgreSQL)", "counter")
        text.sample("sessiond_tenants_lost_total", [:], Double(backend.tenantsLost.load(ordering: .relaxed)))
        text.header("sessiond_partition_lock_tries_total", "tries of the lock of a tenant this instance did not own (PostgreSQL)", "counter")
        text.sample("sessiond_partition_lock_tries_total", [:], Double(backend.lockTries.load(ordering: .relaxed)))
        guard !partitions.isEmpty else {
            // A standby (PostgreSQL) holds no partition: the owning instances report the rest.
            return respond(RPCHTTPResponse(status: 200, contentType: MetricsText.contentType, body: text.output))
        }
        text.header("sessiond_journal_batches_total", "journal batches made durable", "counter")
        for p in partitions { text.sample("sessiond_journal_batches_total", ["tenant": p.tenant], Double(p.owner.journalStats.batches)) }
        text.header("sessiond_journal_changes_total", "row changes in those batches", "counter")
        for p in partitions { text.sample("sessiond_journal_changes_total", ["tenant": p.tenant], Double(p.owner.journalStats.changes)) }
        text.header("sessiond_journal_commit_seconds_total", "time spent appending batches (write and fdatasync)", "counter")
        for p in partitions { text.sample("sessiond_journal_commit_seconds_total", ["tenant": p.tenant], p.owner.journalStats.commitSeconds) }
        let now = backend.clock.now()
        let head = text
        // One read-only command per tenant, on its owner; the answer waits for all of them.
        let gauges = Mutex<[String: PartitionState.Gauges]>([:])
        let group = DispatchGroup()
        for p in partitions {
            group.enter()
            p.owner.perform(readOnly: true, { state in state.gauges() }, completion: { result in
                if case .success(let g) = result { gauges.withLock { $0[p.tenant] = g } }
                group.leave()
            })
        }
        group.notify(queue: .global()) {
            var text = head
            let all = gauges.withLock { $0 }.sorted { $0.key < $1.key }
            text.header("sessiond_sessions", "open sessions by status", "gauge")
            for (tenant, g) in all {
                for status in [SessionStatus.new, .waiting, .active, .inactive] {
                    text.sample("sessiond_sessions", ["tenant": tenant, "status": status.rawValue], Double(g.sessionsByStatus[status] ?? 0))
                }
            }
            text.header("sessiond_waiting_queue_length", "sessions in the WAITING queue", "gauge")
            for (tenant, g) in all { text.sample("sessiond_waiting_queue_length", ["tenant": tenant], Double(g.waiting)) }
            text.header("sessiond_waiting_oldest_seconds", "how long the head of the WAITING queue has waited", "gauge")
            for (tenant, g) in all {
                let oldest = g.oldestQueuedAt.map { Double(max(0, now.millisecondsSinceEpoch - $0.millisecondsSinceEpoch)) / 1000 } ?? 0
                text.sample("sessiond_waiting_oldest_seconds", ["tenant": tenant], oldest)
            }
            text.header("sessiond_reps", "reps by presence", "gauge")
            for (tenant, g) in all {
                for presence in [Presence.available, .busy, .offline] {
                    text.sample("sessiond_reps", ["tenant": tenant, "presence": presence.rawValue], Double(g.repsByPresence[presence] ?? 0))
                }
            }
            text.header("sessiond_capacity_used_units", "capacity units held by open sessions, all reps", "gauge")
            for (tenant, g) in all { text.sample("sessiond_capacity_used_units", ["tenant": tenant], Double(g.capacityUsed)) }
            text.header("sessiond_capacity_total_units", "capacity units of all reps", "gauge")
            for (tenant, g) in all { text.sample("sessiond_capacity_total_units", ["tenant": tenant], Double(g.capacityTotal)) }
            text.header("sessiond_pending_timers", "sessions with an inactivity or auto-end deadline", "gauge")
            for (tenant, g) in all { text.sample("sessiond_pending_timers", ["tenant": tenant], Double(g.pendingTimers)) }
            respond(RPCHTTPResponse(status: 200, contentType: MetricsText.contentType, body: text.output))
        }
    }
}

/// Prometheus text exposition format, version 0.0.4.
struct MetricsText: Sendable {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"
    private(set) var output = ""

    mutating func header(_ name: String, _ help: String, _ type: String) {
        output += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String] = [:], _ value: Double) {
        let rendered = labels.isEmpty ? "" : "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(separator: ",") + "}"
        let number = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        output += "\(name)\(rendered) \(number)\n"
    }

    mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        header(name, help, "gauge")
        sample(name, [:], value)
    }

    mutating func counter(_ name: String, _ help: String, _ value: Double) {
        header(name, help, "counter")
        sample(name, [:], value)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
