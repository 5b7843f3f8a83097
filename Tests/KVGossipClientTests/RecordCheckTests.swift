import Foundation
@testable import KVGossipClient
import KVGossipControl
import KVGossipCore
import Testing

/// The client's check of a record, record by record (Docs/client.md §Verification): what passes,
/// what each forgery fails with, and that what is delivered is read from the signed bytes.
@Suite struct RecordCheckTests {
    let forgery = Forgery()
    var check: RecordCheck { RecordCheck(root: forgery.cluster, limits: .default) }

    func info(_ encoded: [UInt8]) throws -> RecordInfo { try #require(FakeAgent.describe(encoded)) }

    /// The check a record fails, or nil when it verifies for `key`.
    func failure(_ encoded: [UInt8], for key: String = "/app/x", check: RecordCheck? = nil) throws -> KVClientError.Reason? {
        let k = try Key(key)
        let described = try info(encoded)
        do {
            _ = try (check ?? self.check).verify(described) { $0 == k }
            return nil
        } catch {
            #expect(error.reason == .unverifiedRecord && error.key != nil && error.message.contains(error.key ?? "?"))
            return error.check
        }
    }

    @Test func genuineRecordsVerifyWithTheirChain() throws {
        let byWriter = try check.verify(try info(forgery.record("/app/x", "v"))) { $0.path == "/app/x" }
        #expect(byWriter.string == "v" && byWriter.signer == forgery.writer.publicKey.text)
        #expect(byWriter.chain == [forgery.writerGrant.chainLine])
        let byRoot = try check.verify(try info(forgery.record("/other", "r", by: forgery.root))) { $0.path == "/other" }
        #expect(byRoot.chain == ["root"])
    }

    /// The agent's description is not read: a lie in it changes nothing delivered.
    @Test func whatIsDeliveredComesFromTheSignedBytes() throws {
        let encoded = forgery.record("/app/x", "genuine")
        var lying = try info(encoded)
        lying.value = Data("lie".utf8)
        lying.kind = "tombstone"
        lying.signer = forgery.root.publicKey.text
        lying.digest = "00"
        lying.chain = ["root"]
        lying.timestamp = 1
        let record = try check.verify(lying) { $0.path == "/app/x" }
        let genuine = try check.verify(try info(encoded)) { $0.path == "/app/x" }
        #expect(record == genuine)
        #expect(record.string == "genuine" && !record.isTombstone && record.signer == forgery.writer.publicKey.text && record.digest != "00")
    }

    @Test func eachForgeryFailsWithItsReason() throws {
        #expect(try failure(forgery.tampered("/app/x", "good", to: "evil")) == .badSignature)
        #expect(try failure(forgery.unauthorized("/app/x", "v")) == .noAuthority)
        #expect(try failure(forgery.otherCluster("/app/x", "v")) == .noAuthority)
        // A writer outside its grant's patterns.
        #expect(try failure(forgery.record("/etc/x", "v"), for: "/etc/x") == .noAuthority)
        let hourAhead = Forgery.nowMs + 3_600_000
        #expect(try failure(forgery.record("/app/x", "v", atMs: hourAhead)) == .clockSkew)
        // Within the skew bound it is a record like any other.
        #expect(try failure(forgery.record("/app/x", "v", atMs: Forgery.nowMs + 10_000)) == nil)
    }

    /// A genuine record of another key is not an answer for this one, and neither is a record
    /// whose description names another key than its bytes.
    @Test func aRecordOfAnotherKeyIsNotTheAnswer() throws {
        #expect(try failure(forgery.record("/app/y", "v"), for: "/app/x") == .wrongKey)
        var renamed = try info(forgery.record("/app/y", "v"))
        renamed.key = "/app/x"
        #expect(throws: KVClientError.self) { try check.verify(renamed) { _ in true } }
    }

    /// A large answer is checked in parts at once; what comes back is in the answer's order, each
    /// record with its own verdict.
    @Test func aLargeAnswerIsCheckedInOrder() async throws {
        let infos = try (0..<300).map { i in
            try info(i % 7 == 3 ? forgery.tampered("/app/k\(i)", "v\(i)", to: "x\(i)") : forgery.record("/app/k\(i)", "v\(i)"))
        }
        let checked = await check.check(infos) { $0.path.hasPrefix("/app/") }
        #expect(checked.map(\.key) == infos.map(\.key))
        for (i, entry) in checked.enumerated() {
            if i % 7 == 3 {
                #expect(entry.failure?.check == .badSignature, "record \(i)")
            } else {
                #expect(entry.record?.string == "v\(i)", "record \(i)")
            }
        }
    }

    @Test func aRecordWithoutItsEncodingIsNotDelivered() throws {
        var plain = try info(forgery.record("/app/x", "v"))
        plain.encoded = nil
        do {
            _ = try check.verify(plain) { _ in true }
            Issue.record("a record without its encoding was delivered")
        } catch {
            #expect(error.check == .malformed)
        }
    }
}
