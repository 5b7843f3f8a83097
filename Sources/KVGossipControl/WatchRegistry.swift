import KVGossipCore
import KVGossipNode
import KVGossipStore
import Synchronization

/// Every open watch of one agent, and the routing of committed changes and dirtiness changes to
/// the watches that select them. One store observer and one state observer serve all watches;
/// watches of one key are found by hashing, so thousands of them cost nothing per commit.
final class WatchRegistry: Sendable {
    struct Entry: Sendable {
        let selection: KeySelection
        let inbox: WatchInbox
        let transport: ControlHandler.Transport
    }

    private struct State {
        var byKey: [Key: [Int: WatchInbox]] = [:]
        var others: [Int: Entry] = [:]
        var entries: [Int: Entry] = [:]
        var open: [ControlHandler.Transport: Int] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    private let limit: Int
    private let observations: Mutex<(CommitObservation?, CommitObservation?)> = Mutex((nil, nil))

    /// - Parameter limit: watches open at once on each transport.
    init(node: Node, limit: Int) {
        self.limit = limit
        let commits = node.store.observeCommits { [weak self] changes in self?.route(changes) }
        let states = node.observeStateChanges { [weak self] change in self?.route(change) }
        observations.withLock { $0 = (commits, states) }
    }

    /// Adds a watch, or refuses with `busy` when its transport already has `limit` open.
    func register(_ selection: KeySelection, inbox: WatchInbox, transport: ControlHandler.Transport) throws(ControlError) -> Int {
        let id = state.withLock { s -> Int? in
            guard s.open[transport, default: 0] < limit else { return nil }
            s.open[transport, default: 0] += 1
            s.nextID += 1
            let entry = Entry(selection: selection, inbox: inbox, transport: transport)
            s.entries[s.nextID] = entry
            if let key = selection.singleKey { s.byKey[key, default: [:]][s.nextID] = inbox } else { s.others[s.nextID] = entry }
            return s.nextID
        }
        guard let id else {
            throw ControlError(reason: "busy", message: "this agent already serves \(limit) watches on this transport; try later")
        }
        return id
    }

    func unregister(_ id: Int) {
        state.withLock { s in
            guard let entry = s.entries.removeValue(forKey: id) else { return }
            s.open[entry.transport, default: 1] -= 1
            if let key = entry.selection.singleKey {
                s.byKey[key]?.removeValue(forKey: id)
                if s.byKey[key]?.isEmpty == true { s.byKey.removeValue(forKey: key) }
            } else {
                s.others.removeValue(forKey: id)
            }
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    // On the committing thread (or the one that changed a state): route and return.

    private func route(_ changes: [StoreChange]) {
        state.withLock { s in
            // Each watch gets the commit's changes it selects in one push.
            var batches: [ObjectIdentifier: (inbox: WatchInbox, items: [WatchItem])] = [:]
            for change in changes {
                let key: Key
                switch change {
                case .record(let record, _, _): key = record.key
                case .unset(let k, _): key = k
                case .revocation: continue
                }
                for inbox in Self.watchers(of: key, in: s) {
                    batches[ObjectIdentifier(inbox), default: (inbox, [])].items.append(.change(change))
                }
            }
            for (inbox, items) in batches.values { inbox.push(items) }
        }
    }

    private func route(_ change: Node.StateChange) {
        state.withLock { s in
            switch change {
            case .key(let key, let state):
                for inbox in Self.watchers(of: key, in: s) { inbox.push([.keyState(key, state)]) }
            case .all(let state):
                for entry in s.entries.values { entry.inbox.push([.defaultState(state)]) }
            }
        }
    }

    private static func watchers(of key: Key, in s: State) -> [WatchInbox] {
        var out = s.byKey[key].map { Array($0.values) } ?? []
        for entry in s.others.values where entry.selection.contains(key) { out.append(entry.inbox) }
        return out
    }
}
