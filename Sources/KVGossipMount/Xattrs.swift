import Glibc
import KVGossipCore

/// The read-only extended attributes (Docs/filesystem.md §Extended attributes), all in `user.kvgossip.`:
/// `user.*` is the namespace non-root users can read, and the kernel passes it to the daemon unfiltered.
enum Xattr: String, CaseIterable {
    case signer, chain, timestamp, digest, dirty, state, writable
    /// The key's recent versions, one per line (Docs/history.md §In the mount).
    case history
    /// Only on the mount root.
    case treehash, peers

    static let prefix = "user.kvgossip."

    var fullName: String { Xattr.prefix + rawValue }

    static let perKey: [Xattr] = [.signer, .chain, .timestamp, .digest, .dirty, .state, .writable, .history]
    /// Versions `history` lists: enough to see the recent changes, far below the 64 KiB an
    /// attribute may hold.
    static let historyLines = 16
    /// A key created here and not committed yet has no record to describe.
    static let perUncommittedKey: [Xattr] = [.dirty, .state, .writable]
    static let perRoot: [Xattr] = [.treehash, .peers]

    /// Ours to refuse with EPERM; any other name is simply not stored here.
    static func isOurs(_ name: String) -> Bool { name.hasPrefix(prefix) }
}

extension FSState {
    func xattrNames(_ ino: UInt64) throws(FSError) -> [Xattr] {
        let path = try path(ino)
        let entry = try entry(path)
        switch entry.kind {
        case .directory: return path == ViewPath.root ? Xattr.perRoot : []
        case .scratch: return []
        case .key: return entry.isUncommittedKey ? Xattr.perUncommittedKey : Xattr.perKey
        }
    }

    /// The attribute's text, without a trailing newline (`chain` and `peers` have one line per item).
    func xattrValue(_ ino: UInt64, _ name: String, peers: () -> [String]) throws(FSError) -> String {
        guard let attribute = Xattr.allCases.first(where: { $0.fullName == name }),
            try xattrNames(ino).contains(attribute)
        else { throw FSError(ENODATA) }
        let path = try path(ino)
        switch attribute {
        case .treehash: return ctx.node.store.treeHash.hex
        case .peers: return peers().joined(separator: "\n")
        default: break
        }
        guard let key = key(path) else { throw FSError(ENODATA) }
        switch attribute {
        case .dirty: return ctx.node.state(of: key).isDirty ? "1" : "0"
        case .state: return ctx.node.state(of: key).rawValue
        case .writable: return ctx.node.mayWrite(key) ? "1" : "0"
        default: break
        }
        guard let record = try storedRecord(key), record.kind == .value else { throw FSError(ENODATA) }
        switch attribute {
        case .signer:
            return record.signer.text
        case .chain:
            let chain = ctx.node.chain(of: record)
            return chain.isEmpty ? "root" : chain.map(\.chainLine).joined(separator: "\n")
        case .timestamp:
            return "\(record.timestamp.rfc3339) \(record.timestamp.raw)"
        case .digest:
            return record.digest.hex
        case .history:
            let versions = (try? ctx.node.store.versions(of: key, limit: Xattr.historyLines)) ?? []
            return versions.map { v in
                "\(v.record.timestamp.rfc3339) \(v.record.signer.fingerprint) \(v.record.digest.hex)\(v.record.kind == .tombstone ? " deleted" : "")"
            }.joined(separator: "\n")
        default:
            throw FSError(ENODATA)
        }
    }
}
