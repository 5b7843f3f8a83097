import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipTestSupport
import Synchronization

/// Speaks the control API on a Unix socket without being an agent: it claims whatever root it is
/// given, serves whatever record encodings the test hands it (forged, unauthorized, future-dated)
/// with descriptions read from those bytes, and keeps every request it received. For attacks on
/// the client: nothing it says is checked by it.
///
/// It answers `status`, `get`, `list` (one page), `watch` (the matching records as one `initial`,
/// then what ``push(_:)`` sends), `unwatch`, `put` (accepted, and kept), and `mint` and `delete`
/// once ``writeAnswer`` is set; anything else is refused with `bad-request`. It hangs up on the
/// operations in ``hangsUpOn`` instead of answering them.
final class FakeAgent: Sendable {
    let socket: String
    private let root: PublicKey
    private let served: Mutex<[String: [UInt8]]>
    private let received = Mutex<[ControlRequest]>([])
    private let connections = Mutex<[Connection]>([])
    private let server = Mutex<LoopbackServer?>(nil)
    /// When set, `mint` and `delete` are answered `accepted` with this record encoding as the key's
    /// winning record, whatever was asked (for attacks on the write path).
    let writeAnswer = Mutex<[UInt8]?>(nil)
    /// Requests of these operations are kept and then answered by closing their connection, as
    /// an agent that dies while serving them would (for the client's retry rules).
    let hangsUpOn = Mutex<Set<ControlRequest.Operation>>([])

    /// One accepted connection: its writes are serialized, and it remembers its watches.
    private final class Connection: Sendable {
        let socket: RawSocket
        let writing = Mutex(())
        let watches = Mutex<[UInt64: ControlRequest]>([:])
        init(fd: Int32) { socket = RawSocket(borrowing: fd, timeout: 600) }

        func send(_ response: ControlResponse) {
            guard let body = try? JSONEncoder().encode(response) else { return }
            writing.withLock { _ in _ = socket.sendFrame(Array(body)) }
        }
    }

    /// Listens at `socket`, claiming `root` and serving `records` (encodings, by key).
    init(socket: String, root: PublicKey, records: [[UInt8]]) throws {
        self.socket = socket
        self.root = root
        served = Mutex(Dictionary(records.compactMap { bytes in Self.key(of: bytes).map { ($0, bytes) } }, uniquingKeysWith: { $1 }))
        guard let server = LoopbackServer(unixPath: socket, serve: { [weak self] fd, _ in self?.serve(fd) }) else {
            throw SandboxError("cannot listen at \(socket)")
        }
        self.server.withLock { $0 = server }
    }

    deinit { stop() }

    func stop() { server.withLock { $0 }?.stop() }

    /// Every request received so far, in order.
    var requests: [ControlRequest] { received.withLock { $0 } }

    /// Serves `encoded` from now on and sends it as a `changed` event to every watch that selects it.
    func push(_ encoded: [UInt8]) {
        guard let key = Self.key(of: encoded), let info = Self.describe(encoded) else { return }
        served.withLock { $0[key] = encoded }
        for connection in connections.withLock({ $0 }) {
            for (id, watch) in connection.watches.withLock({ $0 }) where Self.selects(watch, key) {
                var event = WatchEvent(kind: .changed)
                event.key = key
                event.record = info
                var response = ControlResponse(id: id)
                response.event = event
                connection.send(response)
            }
        }
    }

    private func serve(_ fd: Int32) {
        let connection = Connection(fd: fd)
        connections.withLock { $0.append(connection) }
        while let frame = connection.socket.readFrame() {
            guard let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(frame)) else { return }
            received.withLock { $0.append(request) }
            if hangsUpOn.withLock({ $0.contains(request.op) }) { return }
            connection.send(answer(request, on: connection))
        }
    }

    private func answer(_ request: ControlRequest, on connection: Connection) -> ControlResponse {
        var response = ControlResponse(id: request.id)
        switch request.op {
        case .status:
            response.status = StatusInfo(
                node: root.text, fingerprint: root.fingerprint, root: root.text, treeHash: "", records: served.withLock { $0.count },
                revocations: 0, grants: 0, mount: nil, dirty: [:], refusals: [:], peers: [], shadowed: [], startedAt: "")
        case .get:
            guard let key = request.key, let info = served.withLock({ $0[key] }).flatMap(Self.describe) else {
                return .failure(request.id, "not-found", "nothing for \(request.key ?? "?")")
            }
            response.record = info
        case .list:
            response.records = selected(request)
        case .watch:
            connection.watches.withLock { $0[request.id] = request }
            var event = WatchEvent(kind: .initial)
            event.records = selected(request)
            if request.key != nil { event.state = "synced" }
            response.event = event
        case .mint, .delete:
            guard let forged = writeAnswer.withLock({ $0 }), let info = Self.describe(forged) else {
                return .failure(request.id, "bad-request", "a fake agent does not serve \(request.op.rawValue)")
            }
            response.outcome = "accepted"
            response.record = info
        case .unwatch, .put:
            response.outcome = request.op == .put ? "accepted" : nil
            if let object = request.object { response.record = Self.describe([UInt8](object)) }
        default:
            return .failure(request.id, "bad-request", "a fake agent does not serve \(request.op.rawValue)")
        }
        return response
    }

    private func selected(_ request: ControlRequest) -> [RecordInfo] {
        served.withLock { $0 }.filter { Self.selects(request, $0.key) }.sorted { $0.key < $1.key }.compactMap { Self.describe($0.value) }
    }

    private static func selects(_ request: ControlRequest, _ key: String) -> Bool {
        if let wanted = request.key { return wanted == key }
        let patterns = request.patterns ?? request.pattern.map { [$0] } ?? ["/**"]
        guard let k = try? Key(key) else { return false }
        return patterns.contains { (try? Pattern($0))?.matches(k) == true }
    }

    /// Read leniently, so a tampered value or signature still decodes (the client must judge it).
    private static func decode(_ encoded: [UInt8]) -> Record? {
        var limits = Limits()
        limits.maxValueBytes = Int(UInt32.max)
        return try? Record(decoding: encoded, limits: limits)
    }

    private static func key(of encoded: [UInt8]) -> String? { decode(encoded)?.key.path }

    /// The agent's description of a record, as a real agent would write it from the same bytes.
    static func describe(_ encoded: [UInt8]) -> RecordInfo? {
        guard let r = decode(encoded) else { return nil }
        return RecordInfo(
            key: r.key.path, kind: r.kind == .value ? "value" : "tombstone", value: Data(r.value), timestamp: r.timestamp.raw,
            time: r.timestamp.rfc3339, signer: r.signer.text, digest: r.digest.hex, chain: ["root"], state: "synced", dirty: false,
            encoded: Data(encoded))
    }
}
