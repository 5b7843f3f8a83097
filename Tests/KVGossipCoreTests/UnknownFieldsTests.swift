import Testing
@testable import KVGossipCore

/// Settings files refuse fields they do not know (`UnknownFields`), naming every one of them.
@Suite struct UnknownFieldsTests {
    @Test func knownFieldsPassAndUnknownOnesAreAllNamedInOrder() {
        let known: Set<String> = ["mountUID", "root"]
        #expect(UnknownFields.refusal(in: ["root": "x", "mountUID": 0], known: known) == nil)
        #expect(UnknownFields.refusal(in: [:], known: known) == nil)
        #expect(UnknownFields.refusal(in: ["mountUid": 0], known: known) == #"unknown field "mountUid" (known: mountUID, root)"#)
        #expect(UnknownFields.refusal(in: ["zeta": 1, "alpha": 2, "root": "x"], known: known) == #"unknown fields "alpha", "zeta" (known: mountUID, root)"#)
    }
}
