import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore

struct RevertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Bring back an earlier version's value as a new write.",
        discussion: """
            VERSION is a version's digest as `kvgossip log KEY` prints it (a prefix of at least 8 hex \
            digits that names one version), or its raw HLC timestamp. The earlier record is not \
            re-sent: a new record is minted with its value, the newest timestamp and the signer's \
            own chain, so the revert is itself a change that every host stores, shows in its log \
            and gossips like any other write. Reverting to a deletion writes a tombstone.

            By default the agent signs with its node key (it must hold a grant for KEY). With \
            --key-file and --proof, the record is signed here with that key, as `kvgossip set` does.
            """)

    @Argument(help: "The key.") var key: String
    @Argument(help: "The version to bring back: its digest (or a prefix of 8+ hex digits) or its raw timestamp.") var version: String
    @Option(help: ArgumentHelp("Sign with this secret key file instead of the node key.", valueName: "FILE")) var keyFile: String?
    @Option(help: ArgumentHelp("Grant files proving --key-file's authority (repeatable).", valueName: "FILE")) var proof: [String] = []
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the new record as JSON.") var json = false

    func validate() throws {
        do { _ = try Key(key) } catch { throw ValidationError("\(key): \(error)") }
        if !proof.isEmpty && keyFile == nil { throw ValidationError("--proof goes with --key-file") }
    }

    func run() async throws {
        // The history read, the signing's questions and the write share one connection.
        let (target, response) = try await control.withClient { client in
            let target = try await chosenVersion(from: client)
            return (target, try await write(target, using: client))
        }
        let kind = target.kind
        if response.outcome == "superseded" { throw CLIError("a newer value already holds \(key); nothing was reverted") }
        if json, let record = response.record { return try JSONOutput.print(record) }
        let new = response.record.map { " as version \($0.digest.prefix(16)) (\($0.time))" } ?? ""
        print("reverted \(key) to the \(kind == .value ? "value" : "deletion") of \(target.digest.hex.prefix(16)) (\(target.timestamp.rfc3339))\(new)")
    }

    /// Writes `target`'s value (or deletion) again as KEY's newest version.
    func write(_ target: KVGossipCore.Record, using client: ControlClient) async throws -> ControlResponse {
        if let keyFile {
            let signer = try Files.signingKey(keyFile)
            let record = try await ClientSigning.record(
                key: key, value: target.value, kind: target.kind, signer: signer, proofs: try Files.grants(proof), client: client)
            return try await client.request(.put) { $0.object = Data(record.encoded) }
        }
        if target.kind == .value {
            return try await client.request(.mint) {
                $0.key = key
                $0.value = Data(target.value)
            }
        }
        return try await client.request(.delete) { $0.key = key }
    }

    /// The one version of KEY that VERSION names, from the agent's history.
    func chosenVersion(from client: ControlClient) async throws -> KVGossipCore.Record {
        let wanted = version.lowercased()
        let byTime = UInt64(version)
        guard byTime != nil || (wanted.count >= 8 && Hex.decode(wanted.count % 2 == 0 ? wanted : wanted + "0") != nil) else {
            throw ValidationError("VERSION: a digest (8 or more hex digits) or a raw timestamp, as `kvgossip log \(key)` prints them")
        }
        let matches = try await HistorySource.agent(client).everyPage(target: key, isPattern: false, encoding: true)
            // A digest is named by 8 digits or more, even when they are all decimal (so also a timestamp).
            .filter { (wanted.count >= 8 && $0.digest.hasPrefix(wanted)) || $0.timestamp == byTime }
        guard let match = matches.first else { throw CLIError("no version \(version) of \(key) on this host (`kvgossip log \(key)` lists them)") }
        guard matches.count == 1 else {
            throw CLIError("\(version) names \(matches.count) versions of \(key): \(matches.map { $0.digest.prefix(16) }.joined(separator: ", ")); give more digits")
        }
        if match.current { throw CLIError("\(match.digest.prefix(16)) is already the current version of \(key)") }
        guard let bytes = match.encoded, let record = try? KVGossipCore.Record(decoding: [UInt8](bytes)),
            record.digest.hex == match.digest, record.key.path == key, record.signatureIsValid
        else { throw CLIError("the agent sent a record for \(match.digest.prefix(16)) that does not verify") }
        return record
    }
}
