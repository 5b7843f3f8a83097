import ArgumentParser
import KVGossipCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a key, grant, revocation or record file and check its signatures.",
        discussion: """
            Secret key files show only their public key. For records, the grant chain is searched in
            the record's own pool with the record's cluster as root (revocations known to agents are
            not consulted). Exits non-zero when any signature or chain does not verify.
            """)

    @Argument(help: ArgumentHelp("The file to inspect.", valueName: "FILE"))
    var file: String

    @Flag(help: "Print the decoded objects as JSON.")
    var json = false

    func run() throws {
        let text = try Files.read(file)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var items: [InspectedItem] = []
        if trimmed.hasPrefix(SecretKeyFile.prefix) {
            let key = try Files.signingKey(file)
            items.append(.key(KeySummary(kind: "secret-key", publicKey: key.publicKey.text, fingerprint: key.publicKey.fingerprint)))
        } else if trimmed.hasPrefix(PublicKey.textPrefix) {
            let key = try parsePublicKey(trimmed, option: file)
            items.append(.key(KeySummary(kind: "public-key", publicKey: key.text, fingerprint: key.fingerprint)))
        } else {
            for (_, block) in try Files.blocks([file]) {
                items.append(try InspectedItem(block))
            }
            if items.isEmpty { throw CLIError("\(file) holds no key, grant, revocation or record") }
        }
        if json {
            try JSONOutput.print(items)
        } else {
            print(items.map(\.human).joined(separator: "\n\n"))
        }
        if items.contains(where: { !$0.verifies }) { throw ExitCode(1) }
    }
}
