import Testing
@testable import KVGossipMount

/// The inode numbering rules of Docs/filesystem.md §Mapping, on `InodeTable` alone: stable per path
/// while the kernel holds lookups, trimmed on FORGET, moved by a rename, fresh for a name that
/// comes back after an unlink or a replacing rename, never reused.
@Suite struct InodeTableTests {
    @Test func aPathKeepsItsNumberWhileTheKernelHoldsLookups() {
        var table = InodeTable()
        #expect(table.existing("/") == InodeTable.rootID && table.path(of: InodeTable.rootID) == "/")
        let ino = table.ino(for: "/a/k", lookup: true)
        #expect(ino != InodeTable.rootID)
        // A listing hands out the same number without a reference; lookups add references.
        #expect(table.ino(for: "/a/k", lookup: false) == ino)
        #expect(table.ino(for: "/a/k", lookup: true) == ino)
        #expect(table.ino(for: "/a/other", lookup: true) != ino)
        // Two references taken, one given back: the number stays.
        table.forget(ino, count: 1)
        #expect(table.existing("/a/k") == ino && table.path(of: ino) == "/a/k")
        // The last one given back: the path is forgotten and its next lookup gets a new number.
        table.forget(ino, count: 1)
        #expect(table.existing("/a/k") == nil && table.path(of: ino) == nil)
        let again = table.ino(for: "/a/k", lookup: true)
        #expect(again != ino)
        // The kernel may forget more than it looked up (references from before a reconnect).
        table.forget(again, count: 5)
        #expect(table.path(of: again) == nil)
    }

    @Test func theRootIsOneAndNeverForgotten() {
        var table = InodeTable()
        table.forget(InodeTable.rootID, count: 100)
        #expect(table.path(of: InodeTable.rootID) == "/")
        #expect(table.ino(for: "/", lookup: true) == InodeTable.rootID)
    }

    @Test func aRenameMovesTheNumberWithTheFile() {
        var table = InodeTable()
        let a = table.ino(for: "/d/a", lookup: true)
        table.move(from: "/d/a", to: "/d/b")
        #expect(table.existing("/d/b") == a && table.path(of: a) == "/d/b")
        #expect(table.existing("/d/a") == nil)
        // The old name, made again, is another file.
        let newA = table.ino(for: "/d/a", lookup: true)
        #expect(newA != a && table.path(of: a) == "/d/b")
    }

    @Test func aReplacedOrUnlinkedNameGetsAFreshNumberWhenItComesBack() {
        var table = InodeTable()
        let target = table.ino(for: "/d/f", lookup: true)
        let source = table.ino(for: "/d/f.new", lookup: true)
        // Renamed over: the name now answers with the source's number; the replaced inode, still
        // referenced by the kernel, names nothing any more.
        table.move(from: "/d/f.new", to: "/d/f")
        #expect(table.existing("/d/f") == source)
        #expect(table.path(of: target) == nil)
        // Its FORGET arriving later must not take the name from the file that replaced it.
        table.forget(target, count: 1)
        #expect(table.existing("/d/f") == source && table.path(of: source) == "/d/f")

        // Unlinked while the kernel still holds it, then created again: a new number.
        table.detach("/d/f")
        #expect(table.existing("/d/f") == nil && table.path(of: source) == nil)
        let back = table.ino(for: "/d/f", lookup: true)
        #expect(back != source && back != target)
        table.forget(source, count: 1)
        #expect(table.existing("/d/f") == back)
    }

    @Test func numbersAreNeverReused() {
        var table = InodeTable()
        var seen: Set<UInt64> = [InodeTable.rootID]
        for round in 0..<3 {
            let paths = (0..<9).map { "/r\(round)/k\($0)" }
            let numbers = paths.map { table.ino(for: $0, lookup: true) }
            #expect(Set(numbers).count == paths.count)
            #expect(seen.isDisjoint(with: numbers), "round \(round) reused a number")
            seen.formUnion(numbers)
            // Each way a number can lose its name: forgotten, unlinked, renamed away.
            for (i, ino) in numbers.enumerated() {
                switch i % 3 {
                case 0: table.forget(ino, count: 1)
                case 1: table.detach(paths[i])
                default: table.move(from: paths[i], to: paths[i] + ".moved")
                }
            }
            // Paths seen in earlier rounds come back with new numbers too.
            let back = table.ino(for: "/r0/k\(round)", lookup: true)
            #expect(!seen.contains(back), "round \(round) reused \(back)")
            seen.insert(back)
        }
    }

    @Test func anInodeNobodyReferencesLeavesTheTableWhenItsNameGoes() {
        var table = InodeTable()
        #expect(table.count == 1)
        // Listed but never looked up: nothing will FORGET it, so unlinking drops it at once.
        let listed = table.ino(for: "/listed", lookup: false)
        table.detach("/listed")
        #expect(table.count == 1 && table.path(of: listed) == nil)
        // Looked up: kept (nameless) until the kernel forgets it.
        let held = table.ino(for: "/held", lookup: true)
        table.detach("/held")
        #expect(table.count == 2)
        table.forget(held, count: 1)
        #expect(table.count == 1)
    }
}
