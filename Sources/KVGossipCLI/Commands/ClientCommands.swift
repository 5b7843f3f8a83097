import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore

struct SetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Write a value.",
        discussion: """
            By default the agent mints the record with its node key (it must hold a grant for the key). \
            With --key and --proof, the record is signed here with your key and the agent verifies it \
            exactly like a record from a peer. VALUE "-" or no VALUE reads standard input.
            """)

    @Argument(help: "The key, e.g. /app/db/url.") var key: String
    @Argument(help: "The value; - or none reads standard input.") var value: String?
    @Option(help: ArgumentHelp("Sign with this secret key file instead of the node key.", valueName: "FILE")) var keyFile: String?
    @Option(help: ArgumentHelp("Grant files proving --key-file's authority (repeatable).", valueName: "FILE")) var proof: [String] = []
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the stored record as JSON.") var json = false

    func validate() throws {
        if !proof.isEmpty && keyFile == nil { throw ValidationError("--proof goes with --key-file") }
    }

    func run() async throws {
        let limit = Limits.default.maxValueBytes
        let bytes: Data
        if let value, value != "-" {
            bytes = Data(value.utf8)
        } else {
            // Someone at a terminal who left out the value would otherwise see the command hang.
            if isatty(STDIN_FILENO) == 1 {
                FileHandle.standardError.write(Data("kvgossip: reading the value of \(key) from standard input; end it with Ctrl-D\n".utf8))
            }
            bytes = try StandardStreams.readInput(limit: limit)
        }
        if bytes.count > limit { throw CLIError("the value is over the limit of \(limit) bytes") }
        let response: ControlResponse
        if let keyFile {
            let signer = try Files.signingKey(keyFile)
            let proofs = try Files.grants(proof)
            response = try await control.withClient { client in
                let record = try await ClientSigning.record(key: key, value: [UInt8](bytes), signer: signer, proofs: proofs, client: client)
                return try await client.request(.put) { $0.object = Data(record.encoded) }
            }
        } else {
            response = try await control.call(.mint) {
                $0.key = key
                $0.value = bytes
            }
        }
        if json, let record = response.record { try JSONOutput.print(record) }
        // Nothing was written: a failure, as `revert` says in the same case.
        if response.outcome == "superseded" { throw CLIError("a newer value already holds \(key); nothing was written") }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a key's value (bytes as stored, no newline added).")

    @Argument(help: "The key.") var key: String
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the record (value in base64, signer, chain, time, state) as JSON.") var json = false

    func run() async throws {
        let response = try await control.call(.get) { $0.key = key }
        guard let record = response.record else { throw CLIError("no record in the answer") }
        if json {
            try JSONOutput.print(record)
        } else {
            StandardStreams.write(record.value)
        }
    }
}

struct Rm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a key (mints a signed tombstone with the node key).")

    @Argument(help: "The key.") var key: String
    @OptionGroup var control: ControlOptions

    func run() async throws {
        _ = try await control.call(.delete) { $0.key = key }
    }
}

struct Ls: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List keys at or below a prefix (default: all).",
        discussion: "The agent answers in pages of keys in order; each page is printed as it arrives, so a tree of any size lists in bounded memory.")

    @Argument(help: "A key prefix such as /app, or a pattern such as '/app/*/url'.") var prefix: String?
    @Flag(name: .shortAndLong, help: "Long format: size, time, state, signer fingerprint, key.") var long = false
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the records as JSON.") var json = false

    func run() async throws {
        let client = try await control.connect()
        let array = JSONArrayStream()
        if json { array.begin() }
        do {
            try await client.list({
                if let prefix, prefix.contains("*") || prefix.contains("?") { $0.pattern = prefix } else { $0.prefix = prefix }
            }, each: { page in
                for r in page {
                    if json {
                        try array.element(r)
                    } else if long {
                        let fp = (try? PublicKey(text: r.signer).fingerprint) ?? r.signer
                        print("\(String(r.value.count).leftPad(8)) \(r.time) \(r.state.padding(toLength: 13, withPad: " ", startingAt: 0)) \(fp) \(r.key)")
                    } else {
                        print(r.key)
                    }
                }
                StandardStreams.flushPrinted()
            })
        } catch let error as ControlError {
            await client.close()
            throw CLIError("\(error.reason): \(error.message)")
        }
        await client.close()
        if json { array.end() }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a key's (or a pattern's) current values, then every change, until interrupted.",
        discussion: """
            The current values come first, in pages as the agent reads them. If this command reads more \
            slowly than changes arrive, the agent drops them and says so ("fell behind" on standard \
            error), then sends every current value again before going on.
            """)

    @Argument(help: "A key, a prefix ending in / (/ alone: everything), or a pattern such as '/app/**'.") var target: String
    @OptionGroup var control: ControlOptions
    @Flag(help: "One JSON object per event.") var json = false

    func run() async throws {
        let client = try await control.connect()
        let (_, responses) = try await client.open(op: .watch) {
            if target.contains("*") || target.contains("?") {
                $0.pattern = target
            } else if target.hasSuffix("/") {
                $0.prefix = target == "/" ? nil : String(target.dropLast())
            } else {
                $0.key = target
            }
        }
        for try await response in responses {
            if let error = response.error { throw CLIError("\(error.reason): \(error.message)") }
            guard let event = response.event else { continue }
            if json {
                try JSONOutput.printLine(event)
                continue
            }
            switch event.kind {
            case .initial:
                for r in event.records ?? [] { print("\(r.key) = \(r.value.displayText)") }
            case .changed:
                if let r = event.record { print("\(r.key) = \(r.value.displayText)") }
            case .removed:
                print("\(event.key ?? "?") removed")
            case .state:
                for key in event.keys ?? [event.key ?? "?"] { print("\(key) state \(event.state ?? "?")") }
            case .fellBehind:
                FileHandle.standardError.write(Data("kvgossip: fell behind: the agent dropped changes this watch read too slowly; the current values follow again\n".utf8))
            }
            StandardStreams.flushPrinted()
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the agent's identity, tree hash, peers, dirty keys and refusals.")

    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the status as JSON.") var json = false

    func run() async throws {
        guard let s = try await control.call(.status).status else { throw CLIError("no status in the answer") }
        if json { return try JSONOutput.print(s) }
        for problem in s.problems ?? [] { print("PROBLEM    \(problem)") }
        for warning in s.warnings ?? [] { print("WARNING    \(warning)") }
        if let name = s.name { print("name       \(name)") }
        print("node       \(s.node) (\(s.fingerprint))")
        print("root       \(s.root)")
        print("tree hash  \(s.treeHash)")
        print("records    \(s.records) keys, \(s.revocations) revocations, \(s.grants) grants held")
        print("mount      \(s.mount ?? "none")")
        print("started    \(s.startedAt)")
        print("dirty      \(s.dirty.isEmpty ? "none" : s.dirty.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        print("refusals   \(s.refusals.isEmpty ? "none" : s.refusals.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        if !s.shadowed.isEmpty || s.shadowedTotal ?? 0 > 0 {
            let more = (s.shadowedTotal ?? s.shadowed.count) - s.shadowed.count
            let rest = more > 0 ? " and \(more) more" : ""
            let counting = s.shadowedUpToDate == false ? ", still counting" : ""
            print("shadowed   \(s.shadowed.joined(separator: " "))\(rest) (values hidden by a directory of the same name\(counting))")
        }
        print("peers      \(s.peers.isEmpty ? "none" : "")")
        for p in s.peers {
            print("  \(p.name) \(p.address) sync=\(p.syncPort.map(String.init) ?? "-") last-sync=\(p.lastSync ?? "never") agrees=\(p.treeHashAgrees.map { $0 ? "yes" : "no" } ?? "?")")
        }
    }
}

/// Records signed on this machine with the user's own key, for `set --key-file`.
enum ClientSigning {
    /// `kind` tombstone (for `revert` to a deletion) ignores `value`. Asks `client` (the connection
    /// the record is then put on) for the root and the current version.
    static func record(
        key: String, value: [UInt8], kind: Record.Kind = .value, signer: SigningKey, proofs: [Grant], client: ControlClient
    ) async throws -> Record {
        let k: Key
        do { k = try Key(key) } catch { throw CLIError(error.description) }
        let root = try await client.request(.status).status.map { try PublicKey(text: $0.root) }
        guard let root else { throw CLIError("the agent did not say its root key") }
        // Mint after whatever the agent holds now, so the new value wins (Docs/contract.md §Ordering).
        let current = try? await client.request(.get) {
            $0.key = key
            $0.includeTombstones = true
        }.record.map { HLC(raw: $0.timestamp) }
        let ts = HLC.mint(nowMs: nowMs(), current: current, lastMinted: nil)
        return Record(cluster: root, key: k, kind: kind, value: kind == .value ? value : [], timestamp: ts, signer: signer, pool: proofs)
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

extension Data {
    /// The value as text when it is UTF-8 without control characters, else a short hex summary.
    var displayText: String {
        if let s = String(data: self, encoding: .utf8), !s.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }) {
            return s.hasSuffix("\n") ? String(s.dropLast()) : s
        }
        return "<\(count) bytes>"
    }
}

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Reconcile now with one peer (or every known peer) and print what moved.")

    @Option(help: ArgumentHelp("The peer's sync address.", valueName: "HOST:PORT")) var peer: String?
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print the sessions as JSON.") var json = false

    func run() async throws {
        let client = try await control.connect()
        let response = try await client.call({ $0.peer = peer }, op: .sync)
        await client.close()
        let syncs = response.syncs ?? []
        // Refused as a whole (no peers known, a bad address, asked over TCP): no session to print,
        // so the reason is the output. Sessions that failed one by one are printed below.
        if !response.ok, syncs.isEmpty, let error = response.error { throw CLIError("\(error.reason): \(error.message)") }
        if json {
            try JSONOutput.print(syncs)
        } else {
            for s in syncs {
                if let error = s.error {
                    print("\(s.peer): failed: \(error)")
                } else if s.alreadyEqual {
                    print("\(s.peer): already in sync")
                } else {
                    print("\(s.peer): \(s.differences) differences, sent \(s.sent), received \(s.received), refused by peer \(s.refused)")
                }
            }
        }
        if !response.ok { throw ExitCode(1) }
    }
}
