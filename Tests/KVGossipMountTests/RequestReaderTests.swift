import CFuse3
import Glibc
import Foundation
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// Which requests the worker holding the turn answers itself (`RequestReader.kind`): only those
/// that wait for nothing but the state lock.
@Suite struct RequestReaderTests {
    /// A request's bytes: the 40-byte header with `opcode`, then `body`.
    func request(_ opcode: UInt32, _ body: [UInt32] = []) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 40)
        withUnsafeBytes(of: opcode.littleEndian) { header.replaceSubrange(4..<8, with: $0) }
        return header + body.flatMap { word in withUnsafeBytes(of: word.littleEndian) { Array($0) } }
    }

    func isQuick(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { RequestReader.kind($0) } != .slow
    }

    @Test func lookupsAttributesReadsListingsAndAWritersRequestsAreQuick() {
        // LOOKUP, FORGET, GETATTR, READ, WRITE, STATFS, RELEASE, GETXATTR, LISTXATTR, OPENDIR,
        // READDIR, RELEASEDIR, ACCESS, INTERRUPT, BATCH_FORGET, READDIRPLUS.
        for opcode: UInt32 in [1, 2, 3, 15, 16, 17, 18, 22, 23, 27, 28, 29, 34, 36, 42, 44] {
            #expect(isQuick(request(opcode)), "opcode \(opcode)")
        }
    }

    /// A reader's OPEN has a window of its own, and so do a writer's steps (OPEN, GETXATTR, WRITE),
    /// whose next request follows at once; any RELEASE is quick. Their handlers take the mutation
    /// lock only when it is free and give the turn up before a mint.
    @Test func opensAndReleasesAreQuickAndReadersAndWritersHaveTheirKinds() {
        func kind(_ bytes: [UInt8]) -> RequestReader.Kind { bytes.withUnsafeBytes { RequestReader.kind($0) } }
        #expect(kind(request(14, [UInt32(O_RDONLY), 0])) == .readerOpen)
        #expect(kind(request(14, [UInt32(O_RDONLY | O_TRUNC), 0])) == .writerStep)
        #expect(kind(request(14, [UInt32(O_WRONLY), 0])) == .writerStep)
        #expect(kind(request(14, [UInt32(O_RDWR), 0])) == .writerStep)
        #expect(kind(request(16, [0, 0, 0, 0])) == .writerStep)
        #expect(kind(request(22, [0, 0])) == .writerStep)
        // RELEASE: fh (two words), then the handle's flags.
        #expect(kind(request(18, [7, 0, UInt32(O_RDONLY), 0, 0, 0])) == .quick)
        #expect(kind(request(18, [7, 0, UInt32(O_WRONLY), 0, 0, 0])) == .quick)
    }

    /// A handler about to wait gives the turn up only if its own thread holds it (a RELEASE of a file
    /// created read-only looks quick by its flags but may commit).
    @Test func aHandlerThatMustWaitGivesUpOnlyItsOwnTurn() throws {
        let reader = RequestReader(spinMicroseconds: 50)
        let turn = try #require(reader.turn)
        cfuse_reader_acquire(turn, cfuse_gettid())
        #expect(turn.pointee.holder == cfuse_gettid())
        let other = Thread { reader.yieldTurn() }
        other.start()
        #expect(Readiness.wait { other.isFinished })
        #expect(turn.pointee.holder == cfuse_gettid(), "another thread's yield took the turn")
        reader.yieldTurn()
        #expect(turn.pointee.holder == 0)
        #expect(turn.pointee.spin_ns == turn.pointee.spin_long_ns)
        RequestReader(spinMicroseconds: 0).yieldTurn()  // off: nothing to give up
    }

    /// The holder polls after a reader's requests only where an answer wakes the reader on the
    /// reader's own vCPU; after a slow request the new holder polls in either case.
    @Test func pollsFollowWhereTheKernelWakesTheCaller() {
        let elsewhere = ReadTurnPolls(spinMicroseconds: 50, wakeHere: "N")
        #expect(elsewhere == ReadTurnPolls(spinMicroseconds: 50, wakeHere: nil))
        #expect(elsewhere.afterSlow == 50_000 && elsewhere.afterReaderOpen == 50_000 && elsewhere.afterQuick == 10_000)
        #expect(ReadTurnPolls(spinMicroseconds: 5, wakeHere: nil).afterQuick == 5_000)
        let here = ReadTurnPolls(spinMicroseconds: 50, wakeHere: "Y")
        #expect(here.afterSlow == 50_000 && here.afterReaderOpen == 0 && here.afterQuick == 0)
        #expect(RequestReader(spinMicroseconds: 0, wakeHere: "Y").windows == nil)
    }

    /// The window the holder sets after each kind of request is that kind's: at "N" a reader's
    /// OPEN and other quick requests differ, at "Y" a reader's OPEN and a slow request do; a
    /// writer's step polls as long as a slow request, keeping the turn.
    @Test func theHolderSetsTheWindowOfTheRequestItRead() throws {
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { close(pipe[0]); close(pipe[1]) }
        func windowAfter(_ bytes: [UInt8], _ reader: RequestReader) throws -> Int64 {
            let turn = try #require(reader.turn)
            _ = bytes.withUnsafeBytes { Glibc.write(pipe[1], $0.baseAddress, $0.count) }
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = buffer.withUnsafeMutableBytes { RequestReader.read(turn: turn, pipe[0], $0.baseAddress!, $0.count) }
            #expect(n == bytes.count)
            return turn.pointee.spin_ns
        }
        let readerOpen = request(14, [UInt32(O_RDONLY), 0]), lookup = request(1), flush = request(25, [0, 0, 0, 0])
        let write = request(16, [0, 0, 0, 0])
        let polling = RequestReader(spinMicroseconds: 40, wakeHere: "N")
        #expect(try windowAfter(readerOpen, polling) == 40_000)
        #expect(try windowAfter(lookup, polling) == 10_000)
        #expect(try windowAfter(write, polling) == 40_000)
        #expect(polling.turn?.pointee.holder != 0, "a writer's step keeps the turn")
        #expect(try windowAfter(flush, polling) == 40_000)
        #expect(polling.turn?.pointee.holder == 0, "a slow request hands the turn on")
        let wakingHere = RequestReader(spinMicroseconds: 40, wakeHere: "Y")
        #expect(try windowAfter(readerOpen, wakingHere) == 0)
        #expect(try windowAfter(lookup, wakingHere) == 0)
        #expect(try windowAfter(write, wakingHere) == 40_000)
        #expect(try windowAfter(flush, wakingHere) == 40_000)
    }

    @Test func savesNamespaceChangesAndAnythingUnreadableAreSlow() {
        // FLUSH, FSYNC, CREATE, MKDIR, UNLINK, RENAME, SETATTR, SETXATTR, INIT.
        for opcode: UInt32 in [25, 20, 35, 9, 10, 12, 4, 21, 26] {
            #expect(!isQuick(request(opcode, [0, 0, 0, 0])), "opcode \(opcode)")
        }
        #expect(!isQuick(Array(request(3).prefix(39))))
        #expect(!isQuick(request(14)))  // an OPEN too short to carry its flags
    }
}
