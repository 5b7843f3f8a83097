import ArgumentParser

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
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            StandardStreams.flushPrinted()
        } catch {
            StandardStreams.flushPrinted()
            exit(withError: error)
        }
    }
}
