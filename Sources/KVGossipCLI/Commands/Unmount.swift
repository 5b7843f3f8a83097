import ArgumentParser
import Foundation

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detach a KVGossip mount left behind by a stopped or crashed agent (fusermount3 -uz).",
        discussion: "Used by the systemd unit's ExecStopPost. Does nothing (and succeeds) when nothing is mounted there.")

    @Argument(help: "The mountpoint. Default: the \"mount\" of --config.") var mountpoint: String?
    @Option(help: ArgumentHelp("Agent settings file to read the mountpoint from.", valueName: "FILE")) var config: String?

    func run() throws {
        var target = mountpoint
        if target == nil, let config { target = try AgentSettings.load(config).mount }
        guard let target else { throw ValidationError("give a mountpoint or a --config with \"mount\"") }
        guard Self.isMounted(target) else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
        p.arguments = ["-uz", target]
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw CLIError("fusermount3 -uz \(target) failed with status \(p.terminationStatus)") }
        print("detached \(target)")
    }

    /// Reads /proc/self/mountinfo rather than stat-ing the path, which hangs on a hung mount.
    static func isMounted(_ path: String) -> Bool {
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].replacingOccurrences(of: "\\040", with: " ") == resolved
        }
    }
}
