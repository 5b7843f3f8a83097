import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import NIOPosix

/// One watch on one connection: the selected records in pages (`initial`, `more` on all but the
/// last), then every change it selects, until cancelled. A watch whose backlog overflows sends
/// `fell-behind` and its initial records again, then goes on with the changes from there.
///
/// The watch is registered before the first page is read, so a change committed while the pages
/// go out is sent after them: a key may be reported changed with the value its page already
/// showed, but no change is ever missed.
struct WatchSession: Sendable {
    let request: ControlRequest
    let selection: KeySelection
    let handler: ControlHandler
    let writer: ResponseWriter
    private let inbox: WatchInbox
    private let registry: WatchRegistry
    private let registration: Int

    init(
        _ request: ControlRequest, handler: ControlHandler, registry: WatchRegistry, transport: ControlHandler.Transport,
        backlog: ConnectionBacklog, writer: ResponseWriter
    ) throws(ControlError) {
        self.request = request
        selection = try KeySelection(request)
        self.handler = handler
        self.writer = writer
        self.registry = registry
        inbox = WatchInbox(limit: handler.limits.watchBacklog, connection: backlog)
        registration = try registry.register(selection, inbox: inbox, transport: transport)
    }

    func run(logger: Logger) async {
        defer {
            registry.unregister(registration)
            inbox.close()
        }
        do {
            while true {
                try await sendInitial()
                guard try await forwardUntilBehind() else { return }
                try await send(WatchEvent(kind: .fellBehind))
            }
        } catch let error as ControlError {
            try? await writer.send(.failure(request.id, error.reason, error.message))
        } catch {
            logger.debug("watch ended", metadata: ["error": "\(error)"])
        }
    }

    /// The selected records now, page by page; stops early if the watch fell behind meanwhile.
    /// Each page is read in the connection's turn, so pages wait in the store, not in memory.
    private func sendInitial() async throws {
        var cursor: String?
        repeat {
            let (handler, selection, after, id) = (self.handler, self.selection, cursor, request.id)
            let (tombstones, encoding) = (request.includeTombstones == true, request.includeEncoding == true)
            try await writer.send {
                let page = try await NIOThreadPool.singleton.runIfActive {
                    try handler.page(selection, after: after, tombstones: tombstones, encoding: encoding)
                }
                var event = WatchEvent(kind: .initial)
                event.records = page.records
                event.more = page.next == nil ? nil : true
                // A one-key watch also learns the key's dirtiness when the key is absent.
                if let key = selection.singleKey { event.state = handler.node.state(of: key).rawValue }
                cursor = page.next
                return Self.response(id, event)
            }
        } while cursor != nil && !inbox.hasFallenBehind
    }

    /// Sends changes as they come; returns true when the watch fell behind, false once closed.
    private func forwardUntilBehind() async throws -> Bool {
        while let next = await inbox.next() {
            switch next {
            case .fellBehind:
                return true
            case .item(.change(let change)):
                let id = request.id
                try await writer.send { event(for: change).map { Self.response(id, $0) } }
            case .item(.keyState(let key, let state)):
                var event = WatchEvent(kind: .state)
                event.key = key.path
                event.state = state.rawValue
                try await send(event)
            case .item(.defaultState(let state)):
                try await sendDefaultState(state)
            }
        }
        return false
    }

    private func event(for change: StoreChange) -> WatchEvent? {
        switch change {
        case .record(let record, _, _):
            var e = WatchEvent(kind: record.kind == .value ? .changed : .removed)
            e.key = record.key.path
            e.record = handler.info(record, withEncoding: request.includeEncoding == true)
            return e
        case .unset(let key, _):
            var e = WatchEvent(kind: .removed)
            e.key = key.path
            return e
        case .revocation:
            return nil
        }
    }

    /// The default state moved: the selected keys now in it (those without a state of their own),
    /// listed in pages of keys.
    private func sendDefaultState(_ state: KeyState) async throws {
        if let key = selection.singleKey {
            var event = WatchEvent(kind: .state)
            event.key = key.path
            event.state = handler.node.state(of: key).rawValue
            return try await send(event)
        }
        var cursor: String?
        repeat {
            let (handler, selection, after, id) = (self.handler, self.selection, cursor, request.id)
            let tombstones = request.includeTombstones == true
            try await writer.send {
                let (keys, next) = try await NIOThreadPool.singleton.runIfActive {
                    try handler.keys(selection, after: after, tombstones: tombstones, in: state)
                }
                cursor = next
                guard !keys.isEmpty else { return nil }
                var event = WatchEvent(kind: .state)
                event.state = state.rawValue
                event.keys = keys
                return Self.response(id, event)
            }
        } while cursor != nil && !inbox.hasFallenBehind
    }

    private func send(_ event: WatchEvent) async throws {
        try await writer.send { Self.response(request.id, event) }
    }

    static func response(_ id: UInt64, _ event: WatchEvent) -> ControlResponse {
        var response = ControlResponse(id: id)
        response.event = event
        return response
    }
}

extension ControlHandler {
    /// One page of the selected keys (no records decoded) whose state is `state` now.
    func keys(_ selection: KeySelection, after cursor: String?, tombstones: Bool, in state: KeyState) throws -> (keys: [String], next: String?) {
        var keys: [String] = []
        var bytes = 0
        let next = try node.store.scanRecords(under: selection.scanPrefix, after: cursor, rowLimit: limits.scanRows) { path, kind, _ in
            guard kind == .value || tombstones, selection.contains(path: path) else { return .next }
            guard keys.count < limits.pageRecords, bytes < limits.pageBytes / 2 else { return .stopBefore }
            guard let key = try? Key(path), node.state(of: key) == state else { return .next }
            keys.append(path)
            bytes += path.utf8.count
            return .next
        }
        return (keys, next)
    }
}
