import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTemplate
import Testing

/// What a render cycle does with an outcome: fetch, hold, fail, keep, or install and command.
struct CyclePlanTests {
    let snapshot = Fixture.snapshot(["/a", "/b"], [Fixture.record("/a", "1"), Fixture.record("/b", "2")])
    let renderer = try! TemplateRenderer([
        TemplateSource(name: "one", text: #"{{ "/a"|key }}"#), TemplateSource(name: "two", text: #"{{ "/b"|key }}"#),
    ])

    @Test func bytesEqualToTheFilesMeanNoWriteAndNoCommand() {
        let outcome = renderer.render(snapshot)
        #expect(CyclePlan.decide(outcome, current: [Data("1".utf8), Data("2".utf8)], waitSynced: false, dirtiness: [:]) == .keep)
        #expect(!CyclePlan.runsCommand(exec: "reload", installed: []))
    }

    @Test func onlyChangedOrMissingFilesAreInstalledAndTheCommandRunsOnce() {
        let outcome = renderer.render(snapshot)
        #expect(CyclePlan.decide(outcome, current: [Data("1".utf8), Data("old".utf8)], waitSynced: false, dirtiness: [:]) == .install([1]))
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: false, dirtiness: [:]) == .install([0, 1]))
        #expect(CyclePlan.runsCommand(exec: "reload", installed: [0, 1]))
        #expect(!CyclePlan.runsCommand(exec: nil, installed: [0, 1]))
    }

    @Test func anIncompleteRenderFetchesBeforeAnythingElse() {
        let outcome = renderer.render(.empty)
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: true, dirtiness: [:]) == .fetch(Fixture.patterns(["/a", "/b"])))
    }

    @Test func waitSyncedHoldsWhileAUsedKeyIsDirtyOrUnanswered() {
        let outcome = renderer.render(snapshot)
        let clean: [String: Dirtiness] = ["/a": .synced, "/b": .synced]
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: true, dirtiness: clean) == .install([0, 1]))
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: true, dirtiness: ["/a": .synced, "/b": .agent("pending-fetch")])
            == .hold(["/b (pending-fetch)"]))
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: true, dirtiness: ["/a": .synced]) == .hold(["/b (awaiting-answer)"]))
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: false, dirtiness: [:]) == .install([0, 1]))
    }

    @Test func aMissingKeyThatIsStillBeingFetchedHoldsRatherThanFails() {
        let partial = Fixture.snapshot(["/a", "/b"], [Fixture.record("/a", "1")])
        let outcome = renderer.render(partial)
        #expect(CyclePlan.decide(outcome, current: [nil, nil], waitSynced: true, dirtiness: ["/a": .synced, "/b": .agent("pending-fetch")])
            == .hold(["/b (pending-fetch)"]))
        guard case .fail(let problems) = CyclePlan.decide(outcome, current: [nil, nil], waitSynced: false, dirtiness: [:]) else {
            Issue.record("expected a failure")
            return
        }
        #expect(problems == ["two: no value for /b and no default"])
    }
}
