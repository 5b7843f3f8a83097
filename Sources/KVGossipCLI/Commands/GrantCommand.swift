import ArgumentParser
import KVGossipCore

struct GrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Issue a signed grant that lets another entity write keys matching patterns.",
        discussion: """
            The issuer is the root key or an entity holding grants (given with --proof) that allow \
            delegation. Each --pattern must lie inside the union of the issuer's own valid grants; \
            otherwise the grant is refused and the message names the offending pattern and a key it \
            would reach. The output file holds the new grant followed by the issuer's proof chain, so \
            it is by itself a complete proof for the new holder (pass it to `set --proof` or \
            `grants add`).

            A grant with --member and no pattern is a membership grant: it lets the receiver's node \
            key join the cluster as a peer (sync, serve its mount) without writing anything; a host \
            that only reads needs one. Any grant chaining a node key to the root admits it.

            Examples:
              kvgossip grant --issuer-key root.key --to ed25519:… --pattern '/app/**' --delegate \\
                  --expires 90d --out app-team.grant
              kvgossip grant --issuer-key root.key --to "$(kvgossip status --json | jq -r .node)" \\
                  --member --out host.grant
            """)

    @Option(name: .customLong("issuer-key"), help: ArgumentHelp("Secret key file of the issuer.", valueName: "FILE"))
    var issuerKey: String

    @Option(name: .long, help: ArgumentHelp("Public key of the entity receiving the grant.", valueName: "PUBKEY"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("A key glob (repeatable, up to 16): /app/**, /app/*/url, /a/b?.", valueName: "GLOB"))
    var pattern: [String] = []

    @Flag(help: "A membership grant: admits the receiver as a peer, writes nothing (no --pattern).")
    var member = false

    @Flag(help: "Let the receiver issue grants within this one.")
    var delegate = false

    @Option(help: ArgumentHelp("Validity from now: 90s, 15m, 12h, 30d. Default: no expiry.", valueName: "DURATION"))
    var expires: String?

    @Option(help: ArgumentHelp("Grant files proving the issuer's own authority (repeatable).", valueName: "FILE"))
    var proof: [String] = []

    @Option(help: ArgumentHelp("The cluster's root public key. Default: taken from the proofs, or the issuer itself.", valueName: "PUBKEY"))
    var root: String?

    @Option(name: .long, help: ArgumentHelp("Where to write the grant.", valueName: "FILE"))
    var out: String

    @Flag(help: "Overwrite FILE if it exists.")
    var force = false

    @Flag(help: "Print the grant's id and fields as JSON.")
    var json = false

    static let longestExpiryMs: UInt64 = 36_500 * 86_400_000

    func validate() throws {
        if pattern.isEmpty && !member { throw ValidationError("give at least one --pattern, or --member for a grant that only admits a peer") }
        if !pattern.isEmpty && member { throw ValidationError("--member grants write nothing: leave out --pattern") }
        if let expires {
            guard let ms = DurationText.milliseconds(expires) else {
                throw ValidationError("--expires: \"\(expires)\" is not a duration like 90s, 15m, 12h or 30d")
            }
            // Far enough for any grant, and it keeps the expiry a time every node can count to.
            if ms > Self.longestExpiryMs { throw ValidationError("--expires: \(expires) is more than 100 years; leave --expires out for a grant that does not expire") }
        }
    }

    func run() throws {
        let issuer = try Files.signingKey(issuerKey)
        let issuee = try parsePublicKey(to, option: "--to")
        var patterns: [Pattern] = []
        for text in pattern {
            do { patterns.append(try Pattern(text)) } catch { throw ValidationError("--pattern: \(error.description)") }
        }
        let proofs = try Files.grants(proof)
        let cluster: PublicKey
        if let root {
            cluster = try parsePublicKey(root, option: "--root")
        } else if let fromProof = proofs.first?.cluster {
            cluster = fromProof
        } else {
            cluster = issuer.publicKey
        }
        let now = nowMs()
        let chain: [Grant]
        do {
            chain = try GrantIssuing.proofChain(
                root: cluster, issuer: issuer.publicKey, patterns: patterns, proofs: proofs, nowMs: now,
                cache: GrantVerificationCache())
        } catch {
            throw CLIError("refusing to issue this grant: \(error)")
        }
        let grant: Grant
        do {
            grant = try Grant(
                cluster: cluster, issuer: issuer, issuee: issuee, patterns: patterns, mayDelegate: delegate,
                notBefore: now, expires: expires.flatMap(DurationText.milliseconds).map { now + $0 },
                nonce: secureRandomBytes(Grant.nonceByteCount))
        } catch {
            throw CLIError("refusing to issue this grant: \(error)")
        }
        let text = ([grant] + chain).map { Armor.render(.grant, $0.encoded) }.joined()
        try Files.create(out, contents: text, mode: 0o644, force: force)
        if json {
            try JSONOutput.print(GrantSummary(grant, signatureValid: true))
        } else {
            print("grant \(grant.id.hex) written to \(out) (with \(chain.count) proof grant\(chain.count == 1 ? "" : "s"))")
        }
    }
}
