import KVGossipCore

/// One open file handle (`fi->fh`). Key files never share bytes between handles: each handle reads
/// one version and writes into its own buffer, which becomes one record at commit
/// (Docs/filesystem.md §Writing: one save, one record).
struct OpenFile {
    enum Kind {
        /// A key opened read-only: the value as of the open (empty and without a version when the
        /// key had none). `cached`: its reads go through the kernel's page cache.
        case reader([UInt8], version: RecordVersion?, cached: Bool)
        /// A key opened for writing by a user: `buffer` becomes one record at commit.
        case writer
        /// The follower's own write replaying a change stored already: never minted.
        case delivery
        /// A scratch file: reads and writes go straight to the shared content.
        case scratch(ScratchData)
    }

    let ino: UInt64
    var kind: Kind
    var buffer: [UInt8] = []
    /// O_APPEND: writes go to the buffer's end whatever offset the kernel computed from a size it
    /// may have cached before a remote change.
    var append = false
    /// The buffer differs from what this handle last committed (O_TRUNC and CREATE count).
    var dirty = false
    /// WRITE or ftruncate happened: commit at FLUSH rather than waiting for RELEASE.
    var wrote = false
    /// A write went over the value limit: this handle never commits, so a failed write can't
    /// replace the old value with a truncated one.
    var poisoned = false
    /// This handle created the file; if it never commits, the name goes away at release.
    var createdHere = false
    /// Opened with a passthrough backing (`PassthroughBackings`): its release is counted there.
    var passthrough = false

    var isWriter: Bool {
        if case .writer = kind { return true }
        return false
    }

    var isScratch: Bool {
        if case .scratch = kind { return true }
        return false
    }

    /// The bytes reads see through this handle.
    var readable: [UInt8] {
        switch kind {
        case .reader(let snapshot, _, _): snapshot
        case .writer, .delivery: buffer
        case .scratch(let data): data.bytes
        }
    }
}

/// A directory listing taken at OPENDIR, so a READDIR sequence sees one consistent set of names.
struct DirectoryListing {
    struct Item {
        let name: String
        let ino: UInt64
        let isDirectory: Bool
    }
    let items: [Item]
}

/// Writes `chunk` at `offset` into `bytes`, filling any gap with zeros, as a sparse local file would.
func splice(_ chunk: [UInt8], into bytes: inout [UInt8], at offset: Int) {
    if offset > bytes.count { bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count)) }
    let overlap = min(chunk.count, bytes.count - offset)
    if overlap > 0 { bytes.replaceSubrange(offset..<(offset + overlap), with: chunk[0..<overlap]) }
    if overlap < chunk.count { bytes.append(contentsOf: chunk[overlap...]) }
}

/// Truncates or extends with zeros.
func resize(_ bytes: inout [UInt8], to size: Int) {
    if size < bytes.count {
        bytes.removeSubrange(size...)
    } else if size > bytes.count {
        bytes.append(contentsOf: repeatElement(0, count: size - bytes.count))
    }
}
