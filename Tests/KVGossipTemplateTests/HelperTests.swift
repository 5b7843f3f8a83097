import Foundation
import KVGossipClient
import KVGossipCore
@testable import KVGossipTemplate
import Testing

/// The helpers templates read the tree with, each against a snapshot built by hand.
struct HelperTests {
    let tree = [
        Fixture.record("/app/db/url", "postgres://db1"),
        Fixture.record("/app/db/port", " 5432\n", signer: "ed25519:dba"),
        Fixture.record("/app/hosts", "a.example, b.example ,c.example"),
        Fixture.record("/app/list", "one\n\ntwo\n"),
        Fixture.record("/app/cfg", #"{"port": 8080, "tags": ["x", "y"], "tls": true}"#),
        Fixture.record("/svc/web/a/addr", "10.0.0.1:80"),
        Fixture.record("/svc/web/b/addr", "10.0.0.2:80"),
        Fixture.record("/svc/web/b/weight", "3"),
        Fixture.record("/svc/db/a/addr", "10.0.1.1:5432"),
        Fixture.record("/gone", "", tombstone: true),
    ]

    func rendered(_ text: String) throws -> String? {
        Fixture.text(try Fixture.renderFully(text, tree: tree).0)
    }

    @Test func keyReadsAValueAndADefaultStandsInForAMissingOne() throws {
        #expect(try rendered(#"url={{ "/app/db/url"|key }}"#) == "url=postgres://db1")
        #expect(try rendered(#"{{ "/app/nope"|key:"fallback" }}|{{ "/app/db/url"|key:"unused" }}"#) == "fallback|postgres://db1")
        #expect(try rendered(#"{{ "/gone"|key:"deleted means missing" }}"#) == "deleted means missing")
    }

    @Test func aMissingKeyWithoutDefaultFailsTheRenderNamingEveryMissingKey() throws {
        let (outcome, _) = try Fixture.renderFully(#"{{ "/app/nope"|key }} {{ "/gone"|key }} {{ "/app/db/url"|key }}"#, tree: tree)
        let problems = Fixture.problems(outcome)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("/app/nope, /gone") == true, "\(problems)")
        #expect(outcome.reads.missing == ["/app/nope", "/gone"])
    }

    @Test func existsAndSigner() throws {
        #expect(try rendered(#"{% if "/app/db/url"|exists %}yes{% endif %}{% if not "/app/nope"|exists %} no{% endif %}"#) == "yes no")
        #expect(try rendered(#"{{ "/app/db/port"|signer }} {{ "/app/nope"|signer:"nobody" }}"#) == "ed25519:dba nobody")
    }

    @Test func underListsEveryKeyBelowAPrefixInKeyOrder() throws {
        let text = #"{% for e in "/svc/web"|under %}{{ e.path }}={{ e.value }} ({{ e.name }}, {{ e.key }});{% endfor %}"#
        #expect(try rendered(text) == "a/addr=10.0.0.1:80 (addr, /svc/web/a/addr);b/addr=10.0.0.2:80 (addr, /svc/web/b/addr);b/weight=3 (weight, /svc/web/b/weight);")
        #expect(try rendered(#"{% for e in "/nothing/here"|under %}x{% empty %}none{% endfor %}"#) == "none")
    }

    @Test func matchSelectsByPattern() throws {
        let text = #"{% for e in "/svc/*/a/addr"|match %}{{ e.key }} {% endfor %}"#
        #expect(try rendered(text) == "/svc/db/a/addr /svc/web/a/addr ")
    }

    @Test func splitTrimLinesAndJSON() throws {
        #expect(try rendered(#"{% for h in "/app/hosts"|key|split:","|trim %}[{{ h }}]{% endfor %}"#) == "[a.example][b.example][c.example]")
        #expect(try rendered(#"port={{ "/app/db/port"|key|trim }}"#) == "port=5432")
        #expect(try rendered(#"{% for l in "/app/list"|key|lines %}<{{ l }}>{% endfor %}"#) == "<one><two>")
        let json = #"{% with "/app/cfg"|key|json as c %}{{ c.port }} {{ c.tags|join:"+" }} {{ c.tags|last }} {% if c.tls %}tls{% endif %}{% endwith %}"#
        #expect(try rendered(json) == "8080 x+y y tls")
        let bad = Fixture.problems(try Fixture.renderFully(#"{{ "/app/db/url"|key|json }}"#, tree: tree).0)
        #expect(bad.first?.contains("not valid JSON") == true, "\(bad)")
    }

    @Test func firstAndLastFiltersAreSafeOnEmptyInput() throws {
        #expect(try rendered(#"[{{ "/nothing"|under|last }}][{{ ""|last }}][{{ "/app/list"|key|lines|first }}]"#) == "[][][one]")
    }

    @Test func dotLastIsRefusedBecauseStencilTrapsOnEmptyInput() {
        #expect(throws: TemplateConfigError.self) {
            try TemplateRenderer([TemplateSource(name: "t", text: "a\n{{ items.last }}")])
        }
        #expect(TemplateRenderer.lineUsingDotLast("a\nb\n{% for x in y.last %}") == 3)
        #expect(TemplateRenderer.lineUsingDotLast("x.last outside tags {{ a.lastname }}") == nil)
    }

    @Test func valuesAreDataNotTemplateText() throws {
        let tricky = [Fixture.record("/t", "{{ \"/app/db/url\"|key }}{% for x in y %}")]
        #expect(Fixture.text(try Fixture.renderFully(#"{{ "/t"|key }}"#, tree: tricky).0) == "{{ \"/app/db/url\"|key }}{% for x in y %}")
    }

    @Test func templateErrorsSayWhere() throws {
        let problems = Fixture.problems(try Fixture.render("line one\n{{ \"/a\"|nosuchfilter }}", .empty))
        #expect(problems.first?.hasPrefix("t.tmpl:2:") == true, "\(problems)")
        #expect(problems.first?.contains("nosuchfilter") == true, "\(problems)")
        let badKey = Fixture.problems(try Fixture.render(#"{{ "not a key"|key }}"#, .empty))
        #expect(badKey.first?.contains("invalid key") == true, "\(badKey)")
        let include = Fixture.problems(try Fixture.render(#"{% include "other.tmpl" %}"#, .empty))
        #expect(include.first?.contains("does not exist") == true, "\(include)")
    }

    @Test func aValueThatIsNotTextFailsTheRender() throws {
        let binary = KeyRecord(key: "/bin", value: Data([0xff, 0xfe]), isTombstone: false, timestamp: 1, time: "", signer: "s", digest: "d", chain: [])
        let problems = Fixture.problems(try Fixture.renderFully(#"{{ "/bin"|key }}"#, tree: [binary]).0)
        #expect(problems.first?.contains("not UTF-8") == true, "\(problems)")
    }
}
