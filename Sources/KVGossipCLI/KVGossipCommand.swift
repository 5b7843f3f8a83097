import ArgumentParser
import Foundation

@main
struct KVGossipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvgossip",
        abstract: "Signed, gossiped configuration, mounted as a filesystem.",
        discussion: """
            Every value is signed by an Ed25519 entity; a chain of grants from the cluster's root key \
            says which keys each entity may write. Offline commands (keygen, pubkey, grant, inspect) \
            work on files; the others talk to a running agent.
            """,
        version: KVGossipVersion.text,
        subcommands: [
            AgentCommand.self, SetCommand.self, Get.self, Rm.self, Ls.self, Watch.self, TemplateCommand.self, StatusCommand.self, SyncCommand.self, LogCommand.self, RevertCommand.self,
            Grants.self, Revoke.self, Keygen.self, Pubkey.self, GrantCommand.self, Inspect.self, Unmount.self, MountHelper.self,
        ]
    )

    /// ArgumentParser's own entry, and then what `print` buffered is flushed while the command can
    /// still fail: output lost to a full disk must not end in status 0.
    static func main() async {
        var parsed: ParsableCommand.Type = Self.self
        do {
            var command = try parseAsRoot()
            parsed = type(of: command)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            StandardStreams.flushPrinted()
        } catch let error as ValidationError where parsed != Self.self {
            StandardStreams.flushPrinted()
            FileHandle.standardError.write(Data(usageMessage(error, of: parsed).utf8))
            exit(withError: ExitCode.validationFailure)
        } catch {
            StandardStreams.flushPrinted()
            exit(withError: error)
        }
    }

    /// Bad input found while a subcommand runs, with that subcommand's usage: ArgumentParser knows
    /// which command it parsed only for errors of parsing and `validate()`, and would show the
    /// usage of `kvgossip` itself.
    static func usageMessage(_ error: ValidationError, of command: ParsableCommand.Type) -> String {
        let names = path(to: command, from: Self.self)?.joined(separator: " ") ?? command._commandName
        return """
            Error: \(error.message)
            Usage: \(usageString(for: command))
              See '\(names) --help' for more information.

            """
    }

    /// The names from `root` down to `command` ("kvgossip grants verify").
    static func path(to command: ParsableCommand.Type, from root: ParsableCommand.Type) -> [String]? {
        if command == root { return [root._commandName] }
        for sub in root.configuration.subcommands {
            if let rest = path(to: command, from: sub) { return [root._commandName] + rest }
        }
        return nil
    }
}
