import ArgumentParser
import KVGossipCore

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new entity key pair.",
        discussion: """
            Writes the secret key to FILE with mode 0600 (never overwriting an existing file unless \
            --force) and prints the public key, e.g. ed25519:3q2-7w…. With --cluster-secret it \
            writes a 32-byte cluster secret instead, for `kvgossip agent --cluster-secret FILE`: \
            agents then encrypt and authenticate their sync connections with it.
            """)

    @Option(name: .long, help: ArgumentHelp("Where to write the secret key file.", valueName: "FILE"))
    var out: String

    @Flag(help: "Overwrite FILE if it exists.")
    var force = false

    @Flag(name: .customLong("cluster-secret"), help: "Write a cluster secret for encrypted sync instead of a key pair.")
    var clusterSecret = false

    @Flag(help: "Print {\"publicKey\", \"fingerprint\", \"file\"} as JSON.")
    var json = false

    func run() throws {
        if clusterSecret {
            try Files.create(out, contents: ClusterSecret.generate() + "\n", mode: 0o600, force: force)
            return print("cluster secret written to \(out); give the same file to every agent with --cluster-secret")
        }
        let key = SigningKey.generate()
        try Files.create(out, contents: SecretKeyFile.render(key), mode: 0o600, force: force)
        if json {
            try JSONOutput.print(["publicKey": key.publicKey.text, "fingerprint": key.publicKey.fingerprint, "file": out])
        } else {
            print(key.publicKey.text)
        }
    }
}

struct Pubkey: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the public key of a secret key file.")

    @Option(name: .long, help: ArgumentHelp("The secret key file.", valueName: "FILE"))
    var key: String

    @Flag(help: "Print {\"publicKey\", \"fingerprint\"} as JSON.")
    var json = false

    func run() throws {
        let signing = try Files.signingKey(key)
        if json {
            try JSONOutput.print(["publicKey": signing.publicKey.text, "fingerprint": signing.publicKey.fingerprint])
        } else {
            print(signing.publicKey.text)
        }
    }
}
