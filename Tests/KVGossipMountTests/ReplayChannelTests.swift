import CFuse3
import Foundation
import Glibc
import KVGossipTestSupport
import Synchronization
import Testing
@testable import KVGossipMount

/// The replay helper's channel (`Wire`): frames as they were sent, and a side that waits for input
/// is woken by input only.
@Suite struct ReplayChannelTests {
    func pair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func framesArriveWholeHoweverTheyAreReceived() throws {
        let (agent, helper) = try pair()
        defer { close(agent); close(helper) }
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        // Two requests in one send, then one larger than a receive takes at once.
        #expect(Wire.send(agent, Wire.request(.write, path: "/a/b", data: []) + Wire.request(.create, path: "/c", data: [1, 2])))
        let sender = Thread { _ = Wire.send(agent, Wire.request(.create, path: "/big", data: big)) }
        sender.start()
        var reader = Wire.Reader(fd: helper)
        let first = reader.nextRequest(), second = reader.nextRequest(), third = reader.nextRequest()
        #expect(first?.0 == .write && first?.1 == "/a/b" && first?.2 == [])
        #expect(second?.0 == .create && second?.1 == "/c" && second?.2 == [1, 2])
        #expect(third?.0 == .create && third?.1 == "/big" && third?.2 == big)

        // Replies, and the end of the channel.
        #expect(Wire.send(helper, Wire.reply(0, dev: 1 << 40 | 7) + Wire.reply(ENOENT, dev: 0)))
        // The end of the channel by shutdown, not close: the deferred close is the descriptor's
        // only one. Closing it twice once closed a descriptor another test's event loop had been
        // given in between (epoll_ctl failed with EBADF and NIO stopped the whole test process).
        shutdown(helper, Int32(SHUT_WR))
        var answers = Wire.Reader(fd: agent)
        #expect(answers.nextReply().map { [Int64($0.0), Int64($0.1)] } == [0, 1 << 40 | 7])
        #expect(answers.nextReply()?.0 == ENOENT)
        #expect(answers.nextReply() == nil)
    }

    /// Both ends of a Unix socket pair wait on one queue per socket for input and for room to write.
    /// A side asleep in recv(2) was woken whenever the other side read what it had sent (the room
    /// it took freed), found nothing and slept again: a needless wake-up of the helper for most
    /// changes replayed. Waiting in poll(2) for input, it sleeps on.
    @Test func aSideWaitingForInputSleepsOnWhileTheOtherReadsWhatItSent() throws {
        let (agent, helper) = try pair()
        defer { close(agent); close(helper) }
        #expect(Wire.send(helper, Wire.reply(0, dev: 7)))
        let thread = Atomic<Int32>(0)
        let received = Mutex<[UInt8]?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            thread.store(cfuse_gettid(), ordering: .relaxed)
            var reader = Wire.Reader(fd: helper)
            let bytes = reader.read(3)
            received.withLock { $0 = bytes }
            done.signal()
        }.start()
        try #require(Readiness.wait {
            thread.load(ordering: .relaxed) != 0 && ThreadStatus.field("State", thread: thread.load(ordering: .relaxed))?.hasPrefix("S") == true
        })
        let tid = thread.load(ordering: .relaxed)
        let sleeps = ThreadStatus.sleeps(tid)

        var reader = Wire.Reader(fd: agent)
        #expect(reader.nextReply()?.1 == 7)
        // The absence of a wake-up, watched for a moment: a woken reader sleeps again within
        // microseconds, which adds to its count.
        let woken = Readiness.wait(timeout: 0.3) { ThreadStatus.sleeps(tid) != sleeps }
        #expect(sleeps >= 0 && !woken, "the waiting side was woken: \(sleeps) → \(ThreadStatus.sleeps(tid)) sleeps")

        #expect(Wire.send(agent, [1, 2, 3]))
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(received.withLock { $0 } == [1, 2, 3])
    }

    /// The agent's side waits with a deadline: a reply that does not come, or a send the other
    /// side does not take (its buffer full), fails once the deadline passes instead of waiting for
    /// ever; the end of the channel is told apart from a timeout.
    @Test func theAgentSideStopsWaitingAtItsDeadline() throws {
        let (agent, helper) = try pair()
        defer { close(agent); close(helper) }
        var answers = Wire.Reader(fd: agent)
        var deadline = monotonicMs() + 50
        #expect(answers.nextReply(until: deadline) == nil)
        #expect(answers.timedOut && monotonicMs() >= deadline, "gave up before its deadline")
        let frame = [UInt8](repeating: 7, count: 1 << 20)
        deadline = monotonicMs() + 50
        #expect(!Wire.send(agent, frame, until: deadline), "a megabyte fitted in the channel's buffer")
        #expect(monotonicMs() >= deadline, "gave up before its deadline")
        shutdown(helper, Int32(SHUT_WR))
        #expect(answers.nextReply(until: monotonicMs() + 10_000) == nil)
        #expect(!answers.timedOut)
    }
}
