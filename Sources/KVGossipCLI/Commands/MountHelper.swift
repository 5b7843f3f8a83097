import ArgumentParser
import KVGossipMount

/// The replay helper the agent spawns for its mount (`ReplayHelper`); not for people.
struct MountHelper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount-helper",
        abstract: "Internal: performs the agent's replay writes in its mount (started by the agent).",
        shouldDisplay: false)

    @Option(help: "The descriptor of the channel to the agent.") var channel: Int32
    @Argument(help: "The mountpoint.") var mountpoint: String

    func run() throws {
        let status = ReplayHelper.serve(channel: channel, mountpoint: mountpoint)
        if status != 0 { throw ExitCode(status) }
    }
}
