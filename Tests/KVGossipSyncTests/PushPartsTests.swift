import KVGossipCore
import Synchronization
import Testing
@testable import KVGossipSync

/// A push split into parts: each part goes once the one before is answered, the results come back
/// as one answer in order, and the first failure ends it.
struct PushPartsTests {
    final class Log: Sendable {
        let sent = Mutex<[[String]]>([])
        let answers = Mutex<[@Sendable (PushAnswer.Outcome) -> Void]>([])
        let outcome = Mutex<String?>(nil)

        func send(_ batch: [Record], _ answered: @escaping @Sendable (PushAnswer.Outcome) -> Void) {
            sent.withLock { $0.append(batch.map(\.key.path)) }
            answers.withLock { $0.append(answered) }
        }

        func ended(_ outcome: PushAnswer.Outcome) {
            let text: String
            switch outcome {
            case .answered(let results): text = results.map(\.key.path).joined(separator: " ")
            case .failed: text = "failed"
            }
            self.outcome.withLock { $0 = $0 == nil ? text : "\($0!) and again: \(text)" }
        }

        /// Answers the part sent last as held, one result per record.
        func answerLast(_ records: [Record]) {
            let answered = answers.withLock { $0.last! }
            answered(.answered(records.map { (key: $0.key, digest: $0.digest, held: true) }))
        }
    }

    static let root = SigningKey.generate()
    static let records = (0..<3).map { i in
        Record(cluster: root.publicKey, key: try! Key("/p/\(i)"), kind: .value, value: [1], timestamp: HLC(physicalMs: 1), signer: root, pool: [])
    }

    @Test func partsGoOneAfterTheOtherAndAreAnsweredAsOne() throws {
        let log = Log()
        let parts = PushParts([[Self.records[0]], [Self.records[1], Self.records[2]]]) { log.ended($0) }
        try parts.start { log.send($0, $1) }
        #expect(log.sent.withLock { $0 } == [["/p/0"]], "the second part went before the first was answered")
        log.answerLast([Self.records[0]])
        #expect(log.sent.withLock { $0 } == [["/p/0"], ["/p/1", "/p/2"]])
        #expect(log.outcome.withLock { $0 } == nil)
        log.answerLast([Self.records[1], Self.records[2]])
        #expect(log.outcome.withLock { $0 } == "/p/0 /p/1 /p/2")
    }

    @Test func theFirstFailureEndsIt() throws {
        struct Broke: Error {}
        let log = Log()
        let parts = PushParts([[Self.records[0]], [Self.records[1]], [Self.records[2]]]) { log.ended($0) }
        try parts.start { log.send($0, $1) }
        let first = log.answers.withLock { $0[0] }
        first(.failed(Broke()))
        #expect(log.outcome.withLock { $0 } == "failed")
        #expect(log.sent.withLock { $0 }.count == 1, "a part went after a failure")

        // A part that cannot be sent (the link closed meanwhile) fails the push too.
        let closing = Log()
        let sends = Mutex(0)
        let later = PushParts([[Self.records[0]], [Self.records[1]]]) { closing.ended($0) }
        try later.start { batch, answered in
            let n = sends.withLock { n -> Int in
                n += 1
                return n
            }
            if n > 1 { throw Broke() }
            closing.send(batch, answered)
        }
        closing.answerLast([Self.records[0]])
        #expect(closing.outcome.withLock { $0 } == "failed")
    }

    @Test func noPartsIsAnsweredAtOnce() throws {
        let log = Log()
        try PushParts([]) { log.ended($0) }.start { log.send($0, $1) }
        #expect(log.outcome.withLock { $0 } == "")
        #expect(log.sent.withLock { $0 }.isEmpty)
    }
}
