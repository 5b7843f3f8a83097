import ArgumentParser
import Foundation
import KVGossipMount
import Logging

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Clear a KVGossip mount left behind by a stopped, crashed or hung agent.",
        discussion: """
            Used by the systemd unit's ExecStopPost. A mount whose agent is gone or does not answer \
            has its FUSE connection aborted (so nothing stays blocked on it) and is detached. A mount \
            a running agent still serves is only detached, and that agent mounts it again: to take \
            the tree away, stop the agent. Does nothing (and succeeds) when nothing is mounted there.
            """)

    @Argument(help: "The mountpoint. Default: the \"mount\" of --config.") var mountpoint: String?
    @Option(help: ArgumentHelp("Agent settings file to read the mountpoint from.", valueName: "FILE")) var config: String?

    func run() throws {
        var target = mountpoint
        if target == nil, let config { target = try AgentSettings.load(config).mount }
        guard let target else { throw ValidationError("give a mountpoint or a --config with \"mount\"") }
        var logger = Logger(label: "kvgossip.unmount")
        logger.logLevel = .warning
        switch MountCleanup.unmount(target, logger: logger) {
        case .notMounted: break
        case .detachedLive: print("detached \(target) (its agent is running and will mount it again)")
        case .abortedAndDetached: print("aborted the connection of \(target) and detached it")
        case .notKVGossip(let type): throw CLIError("\(target) is a \(type) mount, not a KVGossip one; leaving it alone")
        case .failed(let reason): throw CLIError("cannot detach \(target): \(reason)")
        }
    }
}
