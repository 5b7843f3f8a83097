import KVGossipCore

/// The digests of the records this store committed lately, by key: what `Store.digests(of:)`
/// answers without a read.
///
/// Why: every pushed record is first looked up, so one already held is answered `duplicate`
/// without a signature check (Docs/architecture.md §Gossip, *Applying a push*). That read, on a
/// connection of its own, was 8 % of a receiver's store threads, half of it SQLite beginning and
/// ending its read (two file-lock calls). A key pushed to this node was usually committed here not
/// long before, by the last push of it; its digest is then known from that commit.
///
/// Only what the store's own commits said is kept, after they committed, so an entry is the stored
/// digest as a read after that commit would find it. A key not here is read from the store. A
/// commit that applies a revocation empties the table: a revocation rewrites and unsets records
/// under many keys, and is rare.
struct RecentDigests {
    /// Keys remembered at most; at the limit the table starts again empty (a miss costs one read).
    static let capacity = 4096
    /// `.some(nil)`: the store holds no record under the key.
    private var byKey: [Key: Hash256?] = [:]

    /// The digest stored under `key`, if known: `.some(nil)` when none is stored, nil when unknown.
    func lookup(_ key: Key) -> Hash256?? {
        byKey[key]
    }

    /// A commit's changes, once committed.
    mutating func note(_ changes: [StoreChange]) {
        if changes.contains(where: { if case .revocation = $0 { true } else { false } }) {
            byKey.removeAll()
            return
        }
        for change in changes {
            switch change {
            case .record(let record, _, _): remember(record.key, record.digest)
            case .unset(let key, _): remember(key, nil)
            case .revocation: break
            }
        }
    }

    private mutating func remember(_ key: Key, _ digest: Hash256?) {
        if byKey.count >= Self.capacity, byKey.index(forKey: key) == nil { byKey.removeAll(keepingCapacity: true) }
        byKey[key] = .some(digest)
    }

    var count: Int { byKey.count }
}
