/// How much of each key's past one host keeps (Docs/history.md §Bounds). History is local: it
/// never takes part in sync or in the tree hash, so hosts may choose different bounds.
public struct HistoryBounds: Sendable, Equatable {
    /// Earlier versions kept per key, beside the current one. 0 keeps none.
    public var versionsPerKey: Int
    /// The most bytes (signed record encodings) the earlier versions of all keys may take together.
    public var totalBytes: Int

    public init(versionsPerKey: Int = 32, totalBytes: Int = 64 << 20) {
        self.versionsPerKey = versionsPerKey
        self.totalBytes = totalBytes
    }

    public static let `default` = HistoryBounds()
    public static let off = HistoryBounds(versionsPerKey: 0, totalBytes: 0)

    public var isOff: Bool { versionsPerKey <= 0 || totalBytes <= 0 }
}

/// What history keeps and what it lets go (Docs/history.md §What is kept). The store applies these
/// decisions in the transaction that replaces a key's record, so keeping history costs no commit of
/// its own.
public enum HistoryRule {
    /// Whether a version that is not (or no longer) a key's current one enters history: one that
    /// a newer record replaced, one a revocation unset, or one that arrived already beaten. Only a
    /// version larger than the whole budget stays out (it would push out everything else and then
    /// itself).
    public static func admits(bytes: Int, bounds: HistoryBounds) -> Bool {
        !bounds.isOff && bytes <= bounds.totalBytes
    }

    /// How many earlier versions of one key stay: its highest ones (in the order of
    /// Docs/contract.md §Ordering); the lower ones go.
    public static func versionsKeptPerKey(_ bounds: HistoryBounds) -> Int {
        bounds.isOff ? 0 : bounds.versionsPerKey
    }

    /// How many entries to drop from the front of `oldestFirst` (entry sizes in arrival order, the
    /// oldest first) so that `totalBytes` fits the budget, and how many bytes that frees. When
    /// the entries given are not enough, all of them go and the caller asks for more.
    public static func dropsForBudget(
        totalBytes: Int, oldestFirst sizes: some Sequence<Int>, bounds: HistoryBounds
    ) -> (count: Int, freed: Int) {
        let budget = bounds.isOff ? 0 : bounds.totalBytes
        var over = totalBytes - budget
        var count = 0
        var freed = 0
        for size in sizes {
            guard over > 0 else { break }
            count += 1
            freed += size
            over -= size
        }
        return (count, freed)
    }

    /// For versions listed newest first, the index of the older version each one brings back: a
    /// value equal to that of an earlier version while the version just before it holds something
    /// else (a revert, or the same value written again). nil where nothing was brought back.
    public static func restoredVersions(newestFirst versions: [(kind: Record.Kind, valueHash: Hash256)]) -> [Int?] {
        versions.indices.map { i -> Int? in
            guard versions[i].kind == .value, i + 1 < versions.count else { return nil }
            let previous = versions[i + 1]
            if previous.kind == .value && previous.valueHash == versions[i].valueHash { return nil }
            return versions.indices.dropFirst(i + 2).first { j in
                versions[j].kind == .value && versions[j].valueHash == versions[i].valueHash
            }
        }
    }
}

/// Where a stored version's authority stands now: the chain it was accepted under may since have
/// lost a grant to a revocation (Docs/history.md §Reading the log).
public enum ChainStanding: Sendable, Equatable {
    /// A chain from the root still holds (empty: signed by the root).
    case valid(chain: [Grant])
    /// Every chain it had goes through a revoked grant.
    case revoked(grants: [Hash256])
    /// No chain for another reason (a grant not in force at the record's time, for instance).
    case invalid(Refusal)

    /// Authority alone, as the revocation cascade judges a stored record (no clock or size checks).
    public init(of record: Record, validator: RecordValidator, isRevoked: (Hash256) -> Bool) {
        switch validator.recheck(record, isRevoked: isRevoked) {
        case .authorized(let chain): self = .valid(chain: chain)
        case .refused(let refusal, let revoked) where refusal.reason == .revoked: self = .revoked(grants: revoked)
        case .refused(let refusal, _): self = .invalid(refusal)
        }
    }

    /// `valid`, `revoked` or the refusal's reason code.
    public var label: String {
        switch self {
        case .valid: "valid"
        case .revoked: "revoked"
        case .invalid(let refusal): refusal.reason.rawValue
        }
    }
}
