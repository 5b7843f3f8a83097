import ArgumentParser
import Foundation
import KVGossipCore

/// File access for the CLI: secret key files with the 0600 rule, armored objects, atomic writes.
enum Files {
    static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read \(path): no such file or not readable")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(path) is not a text file") }
        return text
    }

    /// Why a Foundation file operation failed, in the system's words ("Permission denied", "No
    /// such file or directory") rather than Foundation's dump of its error domain and user info.
    static func reason(_ error: any Error) -> String {
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = error as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return String(describing: error)
    }

    static func mode(_ path: String) throws -> UInt32 {
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        return (attrs[.posixPermissions] as? NSNumber)?.uint32Value ?? 0o777
    }

    static func signingKey(_ path: String) throws -> SigningKey {
        let text = try read(path)
        let mode = try mode(path)
        do { return try SecretKeyFile.parse(text, mode: mode, path: path) } catch { throw CLIError(error.description) }
    }

    /// A cluster secret file, with the same 0600 rule as secret keys.
    static func clusterSecret(_ path: String) throws -> ClusterSecret {
        let text = try read(path)
        let mode = try mode(path)
        if mode & 0o077 != 0 {
            throw CLIError("cluster secret file \(path) is accessible by group or others (mode \(String(mode & 0o777, radix: 8))); run: chmod 600 \(path)")
        }
        guard let secret = ClusterSecret(text: text) else { throw CLIError("\(path) does not hold a cluster secret (32 bytes of base64url)") }
        return secret
    }

    /// Creates `path` with `mode`, refusing to overwrite unless `force`; written in full or not at all.
    static func create(_ path: String, contents: String, mode: mode_t, force: Bool = false) throws {
        if !force && FileManager.default.fileExists(atPath: path) {
            throw CLIError("\(path) already exists; refusing to overwrite it (use --force)")
        }
        try StagedFile(Data(contents.utf8), for: path, mode: mode).install()
    }

    /// All armored blocks in the given files, in order.
    static func blocks(_ paths: [String]) throws -> [(path: String, block: Armor.Block)] {
        var out: [(path: String, block: Armor.Block)] = []
        for path in paths {
            let text = try read(path)
            do {
                for block in try Armor.parse(text) { out.append((path, block)) }
            } catch {
                throw CLIError("\(path): \(error.detail)")
            }
        }
        return out
    }

    /// The grants in the given files. A file that holds none (a key, garbage, an empty file) is an
    /// error: skipping it made a proof silently shorter than the one asked for.
    static func grants(_ paths: [String]) throws -> [Grant] {
        var out: [Grant] = []
        for path in paths {
            let found = try blocks([path]).compactMap { _, block -> Grant? in
                guard block.kind == .grant else { return nil }
                do { return try Grant(decoding: block.bytes) } catch { throw CLIError("\(path): \(error)") }
            }
            if found.isEmpty { throw CLIError("\(path) holds no grant (a GRANT block, as `kvgossip grant` writes)") }
            out += found
        }
        return out
    }
}

/// An error whose message is the whole story, printed as `kvgossip: <message>`.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func parsePublicKey(_ text: String, option: String) throws -> PublicKey {
    do { return try PublicKey(text: text) } catch { throw ValidationError("\(option): \(error.description)") }
}

func nowMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
