import Foundation
import KVGossipTemplate
import Testing

/// `/etc/kvgossip/templates/NAME.json` and its merge with flags.
struct ConfigTests {
    func decode(_ json: String) throws -> TemplateSetConfig {
        try TemplateSetConfig.decode(Data(json.utf8), path: "set.json")
    }

    @Test func readsEveryFieldAndResolvesRelativePaths() throws {
        let config = try decode("""
            {"control": ["/run/a.sock", "10.0.0.2:7948"], "exec": "systemctl reload nginx", "wait": "50ms:1s",
             "waitSynced": true, "commandTimeout": "5s", "statusFile": "status.json", "logLevel": "debug",
             "templates": [{"source": "up.tmpl", "destination": "/etc/nginx/up.conf", "mode": "0640",
                            "owner": "root", "group": "www-data", "check": "nginx -t"}]}
            """).resolvingPaths(against: "/etc/kvgossip/templates")
        #expect(config.problems() == [])
        #expect(config.templates?.first?.source == "/etc/kvgossip/templates/up.tmpl")
        #expect(config.templates?.first?.destination == "/etc/nginx/up.conf")
        #expect(try config.templates?.first?.permissions == 0o640)
        #expect(config.statusFile == "/etc/kvgossip/templates/status.json")
        #expect(config.control == ["/run/a.sock", "10.0.0.2:7948"])
    }

    @Test func unknownFieldsAndMissingOnesAreNamed() {
        #expect(throws: TemplateConfigError("set.json: templates[0]: unknown field \"destinaton\" (known: check, destination, group, mode, owner, source)")) {
            try decode(#"{"templates": [{"source": "a", "destinaton": "b"}]}"#)
        }
        #expect(throws: TemplateConfigError.self) { try decode(#"{"exce": "x"}"#) }
        #expect(throws: TemplateConfigError("set.json: templates[0].destination is required")) {
            try decode(#"{"templates": [{"source": "a"}]}"#)
        }
        #expect(throws: TemplateConfigError("set.json: waitSynced has the wrong type")) { try decode(#"{"waitSynced": "yes"}"#) }
        #expect(throws: TemplateConfigError("set.json: not valid JSON")) { try decode("{") }
    }

    @Test func problemsAreAllReportedAtOnce() throws {
        var config = try decode(#"{"wait": "2s:1s", "commandTimeout": "0s", "templates": [{"source": "a", "destination": "/x", "mode": "999"}, {"source": "b", "destination": "/x"}]}"#)
        #expect(config.problems().count == 4, "\(config.problems())")
        config = TemplateSetConfig()
        #expect(config.problems().first?.hasPrefix("templates:") == true)
        // Set-user-ID, set-group-ID and sticky bits are not permission bits a render may give.
        config = try decode(#"{"templates": [{"source": "a", "destination": "/x", "mode": "4755"}]}"#)
        #expect(config.problems().contains { $0.contains("up to 0777") }, "\(config.problems())")
    }

    @Test func flagsAddTemplatesAndOverrideTheRest() throws {
        let file = try decode(#"{"exec": "a", "wait": "1s", "templates": [{"source": "s1", "destination": "/d1"}]}"#)
        var flags = TemplateSetConfig()
        flags.exec = "b"
        flags.templates = [TemplateSpec(source: "s2", destination: "/d2")]
        let merged = file.overridden(by: flags)
        #expect(merged.exec == "b")
        #expect(merged.wait == "1s")
        #expect(merged.templates?.map(\.destination) == ["/d1", "/d2"])
    }
}
