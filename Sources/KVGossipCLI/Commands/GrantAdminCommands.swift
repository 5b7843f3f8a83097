import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore

struct Grants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give the agent grants it can use as proofs, or list them.",
        subcommands: [Add.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the grants in FILE... on the agent (for the records its node key mints).")

        @Argument(help: "Grant files (each may hold a whole chain).") var files: [String]
        @OptionGroup var control: ControlOptions

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one grant file") }
        }

        func run() async throws {
            let grants = try Files.grants(files)
            if grants.isEmpty { throw CLIError("no grants in \(files.joined(separator: ", "))") }
            let response = try await control.call(.grantsAdd) { $0.grants = grants.map { Data($0.encoded) } }
            for line in response.grantResults ?? [] { print(line) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the grants the agent holds.")

        @OptionGroup var control: ControlOptions
        @Flag(help: "Print the grants as JSON.") var json = false

        func run() async throws {
            let grants = try await control.call(.grantsList).grants ?? []
            if json { return try JSONOutput.print(grants) }
            for g in grants {
                print("\(g.id)  \(g.patterns.joined(separator: " "))\(g.mayDelegate ? " (delegate)" : "")\(g.revoked ? " REVOKED" : "")")
                print("    \(g.issuer) -> \(g.issuee)\(g.expires.map { " until \($0)" } ?? "")")
            }
        }
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a grant, signed with the root key or the grant issuer's key.",
        discussion: """
            GRANT is a grant file or a grant id (hex). The agent stores the revocation permanently, \
            unsets every key that depended only on that grant, and spreads it to its peers.

            A revocation signed by the grant's issuer (not the root) must prove the issuer's power to \
            issue grants: --proof names the issuer's own grant file(s), the chain of delegating grants \
            from the root that `kvgossip grant` wrote for it. Only the root may revoke by id alone.
            """)

    @Option(name: .long, help: ArgumentHelp("Secret key file of the root or of the grant's issuer.", valueName: "FILE")) var key: String
    @Option(help: ArgumentHelp("The issuer's own grant file(s): its delegating chain from the root (repeatable).", valueName: "FILE"))
    var proof: [String] = []
    @Argument(help: "A grant file or a grant id.") var grant: String
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the outcome as JSON.") var json = false

    func run() async throws {
        try await control.withClient { try await revoke(using: $0) }
    }

    /// Asks the agent for its root (and for the grants it holds, to revoke by id), then revokes:
    /// all on one connection.
    private func revoke(using client: ControlClient) async throws {
        let signer = try Files.signingKey(key)
        let status = try await client.request(.status).status
        guard let root = try status.map({ try PublicKey(text: $0.root) }) else { throw CLIError("the agent did not say its root key") }
        let revocation: Revocation
        if FileManager.default.fileExists(atPath: grant) {
            guard let g = try Files.grants([grant]).first else { throw CLIError("\(grant) holds no grant") }
            let chain = try Files.grants(proof)
            let now = nowMs()
            if signer.publicKey != root,
                ChainSearch(root: root, cache: GrantVerificationCache()).delegation(to: signer.publicKey, atMs: now, pool: chain) == nil
            {
                throw CLIError(
                    "no-authority: the signer \(signer.publicKey.fingerprint) is not the root, and \(proof.isEmpty ? "no --proof was given" : "--proof holds no chain of delegating grants from the root to it valid now"); pass the issuer's own grant file with --proof")
            }
            revocation = Revocation(cluster: root, grant: g, revokedAt: now, signer: signer, proof: chain)
        } else if let id = Hex.decode(grant).flatMap(Hash256.init(bytes:)) {
            let held = try await client.request(.grantsList).grants ?? []
            if signer.publicKey != root, !held.contains(where: { $0.id == id.hex }) {
                throw CLIError("only the root may revoke by id a grant the agent does not hold; pass the grant file")
            }
            revocation = Revocation(cluster: root, grantID: id, revokedAt: nowMs(), signer: signer)
        } else {
            throw CLIError("\(grant) is neither a grant file nor a 64-character grant id")
        }
        let response = try await client.request(.revoke) { $0.object = Data(revocation.encoded) }
        if json { return try JSONOutput.print(["outcome": response.outcome ?? "", "grant": revocation.grantID.hex, "unset": (response.unset ?? []).joined(separator: " ")]) }
        print("revoked \(revocation.grantID.hex) (\(response.outcome ?? "?"))")
        for key in response.unset ?? [] { print("unset \(key)") }
    }
}
