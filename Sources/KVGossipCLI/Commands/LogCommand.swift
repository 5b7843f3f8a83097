import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipStore

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show the versions of a key (or of the keys matching a pattern) this host has seen, newest first.",
        discussion: """
            For each version: its time, its signer (by name when this host knows it, and fingerprint), \
            the chain of grants it carries, its size and value digest, and whether its chain still \
            holds or a grant in it was revoked since. A version that brings back an earlier value \
            (a revert) says which.

            History is local to each host and bounded (--history-versions, --history-bytes on the \
            agent): a host lists the versions it received, while it was running, since it joined. \
            A host that was away when a key changed several times learns only the newest of those \
            versions from anti-entropy. See Docs/history.md.

            The agent is asked through --control; with --data, a data directory is read directly \
            (the agent may be stopped). --export writes the versions as signed records that \
            `kvgossip inspect --root ROOT FILE` verifies on any machine with the root public key.
            """)

    @Argument(help: "A key, or a pattern such as '/app/**'.") var target: String
    @Flag(help: "Print the versions as JSON.") var json = false
    @Flag(help: "Print each version's value.") var values = false
    @Flag(name: .customShort("p"), help: "Print a diff of each version against the one before it.") var patch = false
    @Option(help: ArgumentHelp("Write the versions as signed records to FILE (for `kvgossip inspect`).", valueName: "FILE"))
    var export: String?
    @Flag(help: "Let --export replace an existing file.") var force = false
    @Option(help: ArgumentHelp("Read this data directory instead of asking the agent.", valueName: "DIR")) var data: String?
    @OptionGroup var control: ControlOptions

    func run() async throws {
        let isPattern = target.contains("*") || target.contains("?")
        do { _ = isPattern ? try Pattern(target).text : try Key(target).path } catch { throw ValidationError("\(target): \(error)") }
        let needRecords = values || patch || export != nil
        let versions = try await HistorySource.open(data: data, control: control)
            .all(target: target, isPattern: isPattern, encoding: needRecords)
        if versions.isEmpty { throw CLIError("no versions of \(target) on this host") }
        let entries = try LogEntry.build(versions, withRecords: needRecords)
        if let export {
            try LogExport.write(entries.compactMap(\.record), target: target, to: export, force: force)
            FileHandle.standardError.write(Data("kvgossip: wrote \(entries.count) signed records to \(export); verify with: kvgossip inspect --root ROOT \(export)\n".utf8))
            return
        }
        if json { return try JSONOutput.print(entries.map { $0.json(values: values, patch: patch) }) }
        var lastKey: String?
        for entry in entries {
            if isPattern, entry.info.key != lastKey {
                print("== \(entry.info.key)\(entry.info.current ? "" : " (no current version: unset by a revocation)")")
            } else if !isPattern, lastKey == nil, !entry.info.current {
                print("(\(entry.info.key) has no current version: unset by a revocation)")
            }
            lastKey = entry.info.key
            print(entry.human(values: values, patch: patch))
        }
    }
}

/// Where `log` reads versions: the agent's `history` pages, or a data directory.
enum HistorySource {
    case agent(ControlClient)
    case directory(HistoryReader)

    static func open(data: String?, control: ControlOptions) async throws -> HistorySource {
        guard let data else { return .agent(try await control.connect()) }
        let store: Store
        do { store = try Store(readingDirectory: data) } catch { throw CLIError("cannot read \(data): \(error)") }
        // The node key's public half names this host's own writes (when it can be read).
        let nodeKey = try? Files.signingKey(URL(fileURLWithPath: data).appendingPathComponent("node.key").path).publicKey
        let names = [store.root: "root"].merging(nodeKey.map { [$0: "this node"] } ?? [:]) { a, _ in a }
        return .directory(HistoryReader(store: store) { names })
    }

    func page(target: String, isPattern: Bool, after: String?, encoding: Bool) async throws -> (versions: [VersionInfo], next: String?) {
        switch self {
        case .agent(let client):
            let response = try await client.request(.history) {
                if isPattern { $0.pattern = target } else { $0.key = target }
                $0.after = after
                $0.includeEncoding = encoding
            }
            return (response.versions ?? [], response.next)
        case .directory(let reader):
            do {
                return try reader.page(
                    key: isPattern ? nil : try Key(target), pattern: isPattern ? try Pattern(target) : nil, after: after, limit: nil, encoding: encoding)
            } catch let error as ControlError { throw CLIError("\(error.reason): \(error.message)") }
        }
    }

    /// Every page, then closes the source.
    func all(target: String, isPattern: Bool, encoding: Bool) async throws -> [VersionInfo] {
        do {
            let versions = try await everyPage(target: target, isPattern: isPattern, encoding: encoding)
            await close()
            return versions
        } catch {
            await close()
            throw error
        }
    }

    /// Every page; the source stays open (`revert` writes on the same connection next).
    func everyPage(target: String, isPattern: Bool, encoding: Bool) async throws -> [VersionInfo] {
        var versions: [VersionInfo] = []
        var after: String?
        repeat {
            let page = try await page(target: target, isPattern: isPattern, after: after, encoding: encoding)
            versions += page.versions
            after = page.next
        } while after != nil
        return versions
    }

    func close() async {
        if case .agent(let client) = self { await client.close() }
    }
}
