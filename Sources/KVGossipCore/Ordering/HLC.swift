/// A hybrid logical clock value: Unix milliseconds in the high 48 bits, a counter in the low 16
/// (Docs/contract.md §Ordering). Ordered as the raw u64.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let raw: UInt64

    public init(raw: UInt64) { self.raw = raw }

    public init(physicalMs: UInt64, counter: UInt16 = 0) {
        raw = physicalMs << 16 | UInt64(counter)
    }

    public var physicalMs: UInt64 { raw >> 16 }
    public var counter: UInt16 { UInt16(truncatingIfNeeded: raw) }

    public static func < (a: HLC, b: HLC) -> Bool { a.raw < b.raw }

    /// The timestamp for a record minted now: ahead of the clock, of the value it replaces, and of
    /// everything this node minted before, so a local edit always supersedes even with a slow clock.
    public static func mint(nowMs: UInt64, current: HLC?, lastMinted: HLC?) -> HLC {
        var ts = nowMs << 16
        if let current { ts = max(ts, current.raw &+ 1) }
        if let lastMinted { ts = max(ts, lastMinted.raw &+ 1) }
        return HLC(raw: ts)
    }

    /// A node's mint, with the clock-jump rule (Docs/contract.md §Ordering): the last timestamp
    /// the node minted counts only while it is within `maxSkewMs` of the clock. One further ahead
    /// means the clock went back (or had jumped forward when that record was minted); following it
    /// would date every new record in the future, and every node, this one included, would refuse
    /// them as clock skew until the clock caught up. So it is set aside (and reported), and the
    /// record takes the clock and the key's current record as they are.
    public static func mintPlan(nowMs: UInt64, current: HLC?, lastMinted: HLC?, maxSkewMs: UInt64) -> MintPlan {
        let jumped = lastMinted.map { $0.isTooFarAhead(ofNowMs: nowMs, maxSkewMs: maxSkewMs) } ?? false
        let ts = mint(nowMs: nowMs, current: current, lastMinted: jumped ? nil : lastMinted)
        return MintPlan(timestamp: ts, setAside: jumped ? lastMinted : nil)
    }

    public struct MintPlan: Sendable, Equatable {
        public let timestamp: HLC
        /// The node's last minted timestamp, when the clock is far behind it and it was ignored.
        public let setAside: HLC?
    }

    /// Whether the physical part is more than `maxSkewMs` ahead of `nowMs`.
    public func isTooFarAhead(ofNowMs nowMs: UInt64, maxSkewMs: UInt64) -> Bool {
        physicalMs > nowMs &+ maxSkewMs
    }

    /// Whether the physical part is more than `maxSkewMs` behind `nowMs`: too old for a record
    /// handed to a node as a new write, which must carry the current time (Docs/contract.md
    /// §Ordering). Records between peers are never judged by this.
    public func isTooFarBehind(ofNowMs nowMs: UInt64, maxSkewMs: UInt64) -> Bool {
        physicalMs &+ maxSkewMs < nowMs
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-27T07:13:43.123Z`.
    public var rfc3339: String { RFC3339.format(ms: physicalMs) }

    public var description: String { "\(rfc3339) (\(raw))" }
}

/// The fields that decide which record of a key wins (Docs/contract.md §Ordering).
public struct RecordVersion: Hashable, Comparable, Sendable {
    public let timestamp: HLC
    public let kind: Record.Kind
    public let digest: Hash256

    public init(timestamp: HLC, kind: Record.Kind, digest: Hash256) {
        self.timestamp = timestamp
        self.kind = kind
        self.digest = digest
    }

    /// Greater timestamp wins; then a tombstone beats a value; then the greater digest. Every node
    /// picks the same winner from the same set.
    public static func < (a: RecordVersion, b: RecordVersion) -> Bool {
        if a.timestamp != b.timestamp { return a.timestamp < b.timestamp }
        if a.kind != b.kind { return a.kind < b.kind }
        return a.digest < b.digest
    }
}

enum RFC3339 {
    /// Civil-from-days (proleptic Gregorian), so the core needs no Foundation for dates.
    static func format(ms: UInt64) -> String {
        let secs = Int64(ms / 1000)
        let milli = Int(ms % 1000)
        let days = secs / 86_400
        let rem = Int(secs % 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(Int64(rem / 3600), 2)):"
            + "\(pad(Int64(rem / 60 % 60), 2)):\(pad(Int64(rem % 60), 2)).\(pad(Int64(milli), 3))Z"
    }
}
