import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTemplate
import Testing

/// Which keys a template set depends on, and the snapshot those reads are answered from.
struct DependencyTests {
    @Test func aFirstRenderAgainstNothingSaysWhatToFetch() throws {
        let text = #"{{ "/a"|key }} {{ "/b"|key:"x" }} {% for e in "/svc"|under %}{% endfor %}{% for e in "/p/*/q"|match %}{% endfor %}"#
        let outcome = try Fixture.render(text, .empty)
        guard case .incomplete(let reads) = outcome else {
            Issue.record("expected incomplete, got \(outcome)")
            return
        }
        #expect(reads.uncovered == Fixture.patterns(["/a", "/b", "/svc/**", "/p/*/q"]))
        #expect(reads.patterns == reads.uncovered)
        // Not fetched is not missing: nothing is reported missing before the snapshot covers it.
        #expect(reads.missing.isEmpty)
    }

    @Test func aKeyComputedFromAnotherKeysValueTakesOneMoreRound() throws {
        let tree = [Fixture.record("/active", "blue"), Fixture.record("/pool/blue", "10.0.0.5"), Fixture.record("/pool/green", "10.0.0.6")]
        let text = #"{% with "/active"|key as color %}{% for e in "/pool"|under %}{% if e.name == color %}{{ e.value }}{% endif %}{% endfor %}{% endwith %}"#
        let (outcome, rounds) = try Fixture.renderFully(text, tree: tree)
        #expect(Fixture.text(outcome) == "10.0.0.5")
        #expect(rounds == 2)
        #expect(outcome.reads.usedKeys == ["/active", "/pool/blue", "/pool/green"])
    }

    @Test func aCoveringPatternAnswersAKeyLookup() throws {
        let snapshot = Fixture.snapshot(["/app/**"], [Fixture.record("/app/x", "1")])
        #expect(Fixture.text(try Fixture.render(#"{{ "/app/x"|key }}{{ "/app/y"|key:"-" }}"#, snapshot)) == "1-")
    }

    @Test func aSnapshotKeepsOnlyLiveValuesItsPatternsSelect() {
        let snapshot = Fixture.snapshot(["/a/*"], [
            Fixture.record("/a/x", "1"), Fixture.record("/a/y", "", tombstone: true), Fixture.record("/b/z", "3"), Fixture.record("/a/x/deep", "4"),
        ])
        #expect(snapshot.records.keys.sorted() == ["/a/x"])
        #expect(snapshot.covers(key: try! Key("/a/q")))
        #expect(!snapshot.covers(key: try! Key("/b/z")))
        #expect(snapshot.covers(selection: try! Pattern("/a/*")))
        #expect(!snapshot.covers(selection: try! Pattern("/a/**")))
    }

    @Test func theGateRendersASnapshotOnlyWhenItSaysSomethingNew() {
        var gate = RenderGate()
        let first = Fixture.snapshot(["/a"], [Fixture.record("/a", "1")])
        #expect(gate.needsRender(first))
        gate.settle(first)
        // The same records read again (after a reconnect or an agent restart): nothing to do.
        #expect(!gate.needsRender(Fixture.snapshot(["/a"], [Fixture.record("/a", "1")])))
        // The same value written again is a new record: rendered, though the bytes may not change.
        #expect(gate.needsRender(Fixture.snapshot(["/a"], [Fixture.record("/a", "1", stamp: 2)])))
        #expect(gate.needsRender(Fixture.snapshot(["/a", "/b"], [Fixture.record("/a", "1")])))
        #expect(gate.needsRender(Fixture.snapshot(["/a"], [])))
    }

    @Test func severalTemplatesRenderAllOrNothing() throws {
        let renderer = try TemplateRenderer([
            TemplateSource(name: "one", text: #"{{ "/a"|key }}"#), TemplateSource(name: "two", text: #"{{ "/b"|key }}"#),
        ])
        let snapshot = Fixture.snapshot(["/a", "/b"], [Fixture.record("/a", "1")])
        guard case .failed(let problems, _) = renderer.render(snapshot) else {
            Issue.record("expected a failure")
            return
        }
        #expect(problems == ["two: no value for /b and no default"])
        let full = Fixture.snapshot(["/a", "/b"], [Fixture.record("/a", "1"), Fixture.record("/b", "2")])
        #expect(renderer.render(full) == .rendered([Data("1".utf8), Data("2".utf8)], renderer.render(full).reads))
    }

    @Test func aSetReadingTooMuchIsRefused() throws {
        var many = ""
        for i in 0...TemplateRenderer.maxDependencies { many += "{{ \"/k/\(i)\"|key:\"\" }}" }
        let outcome = try Fixture.render(many, .empty)
        #expect(Fixture.problems(outcome).last?.contains("more than the limit") == true)
    }
}
