import KVGossipCore
import Testing

/// Which link a full table closes (`LinkEviction`): whoever mints many keys under one grant can
/// crowd out only the links under that grant, never a peer with a grant of its own.
struct LinkEvictionTests {
    /// A table of at most `total` links, each added as the newest, as `LinkTable` keeps it.
    struct Table {
        let total: Int
        var holders: [LinkEviction.Holder<String>] = []
        var next: UInt64 = 0

        /// Adds link `id` of a peer at `lineage`; returns the link closed to make room, if any.
        @discardableResult
        mutating func add(_ id: String, _ lineage: [String], proven: Bool = false) -> String? {
            let newcomer = LinkEviction.Holder(id: id, lineage: lineage.map { Hash256.of(Array($0.utf8)) }, order: next, proven: proven)
            next += 1
            guard holders.count >= total else {
                holders.append(newcomer)
                return nil
            }
            let victim = LinkEviction.victim(among: holders + [newcomer])!
            holders.removeAll { $0.id == victim }
            if victim != id { holders.append(newcomer) }
            return victim
        }

        var ids: Set<String> { Set(holders.map(\.id)) }
    }

    /// The attack that found the rule: a delegate mints membership for many keys and links each
    /// four times until the table is full. Hosts with grants of their own from the root keep their
    /// links, newcomers get in, and every link closed is one of the delegate's.
    @Test func aDelegatesKeysCrowdOutOnlyThemselves() {
        var table = Table(total: 16)
        for host in ["a", "b", "c"] { table.add("host-\(host)", ["g-\(host)", host]) }
        var closed: [String] = []
        for key in 0..<20 {
            for n in 0..<4 {
                if let victim = table.add("d\(key)-\(n)", ["g-delegate", "m\(key)", "k\(key)"]) { closed.append(victim) }
            }
        }
        #expect(table.ids.isSuperset(of: ["host-a", "host-b", "host-c"]))
        #expect(closed.allSatisfy { $0.hasPrefix("d") })
        // A new host gets in; the link that makes room is the delegate's.
        #expect(table.add("host-e", ["g-e", "e"])?.hasPrefix("d") == true)
        #expect(table.ids.contains("host-e"))
    }

    /// Hosts under an operator's delegation share its branch; a rogue delegate below the same
    /// operator still crowds out only its own branch, one level further down.
    @Test func aNestedDelegateIsFoundOneLevelDown() {
        var table = Table(total: 12)
        for host in 0..<5 { table.add("host-\(host)", ["g-ops", "m-host-\(host)", "host-\(host)"]) }
        table.add("root", ["root"])
        var closed: [String] = []
        for key in 0..<10 {
            if let victim = table.add("rogue-\(key)", ["g-ops", "g-rogue", "m-rogue-\(key)", "rogue-key-\(key)"]) { closed.append(victim) }
        }
        #expect(!closed.isEmpty && closed.allSatisfy { $0.hasPrefix("rogue") })
        #expect(table.ids.isSuperset(of: ["root", "host-0", "host-1", "host-2", "host-3", "host-4"]))
    }

    /// Hosts that all hold grants through one operator's delegation share its branch, the
    /// largest. A sibling delegate's minted keys would crowd them out down to half the table.
    /// The hosts this node dialed (proven) are not counted against it: the delegate's newcomers
    /// weigh only against unproven links, where its branch is the larger, so they push out only
    /// each other.
    @Test func provenLinksGiveWayOnlyWhenNoUnprovenIsLeft() {
        var table = Table(total: 12)
        for host in 0..<8 { table.add("host-\(host)", ["g-ops", "m-\(host)", "h\(host)"], proven: true) }
        for host in 8..<10 { table.add("host-\(host)", ["g-ops", "m-\(host)", "h\(host)"]) }
        var closed: [String] = []
        for key in 0..<40 {
            if let victim = table.add("d\(key)", ["g-delegate", "m-d\(key)", "k\(key)"]) { closed.append(victim) }
        }
        #expect((0..<10).allSatisfy { table.ids.contains("host-\($0)") }, "\(table.ids)")
        #expect(closed.count == 38 && closed.allSatisfy { $0.hasPrefix("d") })
        // A proven newcomer (this node dialed it) makes room from the unproven, never the proven.
        let victim = table.add("host-10", ["g-ops", "m-10", "h10"], proven: true)
        #expect(victim != nil && !(0..<8).contains { victim == "host-\($0)" })
        // With only proven links held, an unproven newcomer is the one closed.
        var proven = Table(total: 2)
        proven.add("a", ["g-a", "a"], proven: true)
        proven.add("b", ["g-b", "b"], proven: true)
        #expect(proven.add("x", ["g-x", "x"]) == "x")
    }

    /// Branches of one size: the one whose oldest link is oldest gives way, so the choice does not
    /// depend on dictionary order; within one node key, its oldest link goes.
    @Test func tiesGoToTheOldest() {
        var table = Table(total: 4)
        table.add("x1", ["g-x", "x"])
        table.add("y1", ["g-y", "y"])
        table.add("y2", ["g-y", "y"])
        table.add("x2", ["g-x", "x"])
        #expect(table.add("z1", ["g-z", "z"]) == "x1")
        #expect(table.add("w1", ["g-w", "w"]) == "y1")
        // Every branch holds one now: the oldest of all goes.
        #expect(table.add("v1", ["g-v", "v"]) == "y2")
    }

    /// The newcomer counts among the holders: a key already at its share of a full table, whose
    /// own branch is then the largest, closes its own oldest link, never another branch's.
    @Test func aNewcomerInTheLargestBranchClosesItsOwn() {
        var table = Table(total: 3)
        table.add("a1", ["g-a", "a"])
        table.add("b1", ["g-b", "b"])
        table.add("b2", ["g-b", "b"])
        #expect(table.add("b3", ["g-b", "b"]) == "b1")
        #expect(table.ids == ["a1", "b2", "b3"])
        #expect(LinkEviction.victim(among: [LinkEviction.Holder<String>]()) == nil)
    }
}
