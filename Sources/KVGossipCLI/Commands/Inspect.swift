import ArgumentParser
import Foundation
import KVGossipCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a key, grant, revocation or record file and check its signatures.",
        discussion: """
            Secret key files show only their public key. For records, the grant chain is searched in \
            the record's own pool from --root, the cluster's root public key (without it, from the \
            cluster key the record names, which proves only that the record is consistent); a grant \
            of another cluster than --root's does not verify, and an expired grant is marked. \
            Revocations known to agents are not consulted. Every object in the file is checked; each \
            one that does not verify is named on standard error, and the exit status is non-zero. \
            This is how an export of `kvgossip log --export` is verified on another machine.
            """)

    @Argument(help: ArgumentHelp("The file to inspect.", valueName: "FILE"))
    var file: String

    @Flag(help: "Print the decoded objects as JSON.")
    var json = false

    @Option(help: ArgumentHelp("The cluster's root public key (ed25519:…) to verify records and grants against.", valueName: "PUBKEY"))
    var root: String?

    func run() throws {
        let rootKey = try root.map { try parsePublicKey($0, option: "--root") }
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
            for (n, (_, block)) in try Files.blocks([file]).enumerated() {
                items.append(InspectedItem(block, number: n + 1, root: rootKey))
            }
            if items.isEmpty { throw CLIError("\(file) holds no key, grant, revocation or record") }
        }
        if json {
            try JSONOutput.print(items)
        } else {
            print(items.map(\.human).joined(separator: "\n\n"))
        }
        let failures = items.compactMap(\.failure)
        for failure in failures { FileHandle.standardError.write(Data("kvgossip: \(failure)\n".utf8)) }
        if !failures.isEmpty {
            FileHandle.standardError.write(Data("kvgossip: \(failures.count) of \(items.count) objects in \(file) do not verify\n".utf8))
            throw ExitCode(1)
        }
    }
}
