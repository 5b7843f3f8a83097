import Testing
import KVGossipCore

@Suite struct TimedQueueTests {
    @Test func itemsComeOutByTimeThenByTheOrderTheyWereScheduled() {
        var q = TimedQueue<String>()
        for (item, at) in [("c", 30), ("a1", 10), ("b", 20), ("a2", 10), ("d", 40)] { q.schedule(item, at: UInt64(at)) }
        #expect(q.nextTime == 10 && q.count == 5)
        #expect(q.popDue(at: 9) == nil, "nothing due before 10")
        var out: [String] = []
        while let next = q.popDue(at: 30) { out.append(next.item) }
        #expect(out == ["a1", "a2", "b", "c"])
        q.schedule("e", at: 35)
        q.schedule("f", at: 35)
        q.removeAll { $0 == "e" }
        #expect(q.pop()?.item == "f" && q.pop()?.item == "d" && q.pop() == nil && q.isEmpty)
    }
}
