import Foundation
import KVGossipControl
import KVGossipCore

/// A control API request frame (Docs/protocol.md §Control API), decoded as `ControlServer` does,
/// then its fields read as `ControlHandler` reads them: keys, prefixes and patterns as text, objects
/// and grants as encodings.
enum ControlTarget {
    static let request = FuzzTarget(
        "control", dictionary: tokens, seeds: { seedRequests().map { [UInt8](try! JSONEncoder().encode($0)) } }
    ) { input throws(Violation) in
        guard let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(input)) else { return false }
        let json = try mustDecode("a decoded request, as JSON") { () throws(any Error) in try JSONEncoder().encode(request) }
        let again = try mustDecode("a request's own JSON") { () throws(any Error) in try JSONDecoder().decode(ControlRequest.self, from: json) }
        try require(again == request, "a request reads differently from its own JSON")
        let texts = [request.key, request.prefix, request.pattern, request.after].compactMap { $0 } + (request.patterns ?? [])
        for text in texts { try PathTextChecks.checkText(text) }
        if let selection = try? KeySelection(request) { try checkSelection(selection, of: request, nearKeys: texts) }
        if let object = request.object.map([UInt8].init) {
            if request.op == .put, let record = try? Record(decoding: object) { try SignedObjectTargets.checkRecord(record, encoding: object) }
            if request.op == .revoke, let revocation = try? Revocation(decoding: object) {
                try SignedObjectTargets.checkRevocation(revocation, encoding: object)
            }
        }
        for data in request.grants ?? [] {
            let bytes = [UInt8](data)
            if let grant = try? Grant(decoding: bytes) { try SignedObjectTargets.checkGrant(grant, encoding: bytes) }
        }
        return true
    }

    /// What a list or watch selects (`KeySelection`, parsed once per request): every key it contains
    /// lies within the store scan it narrows to, and matching a key read back from the store as text
    /// agrees with matching the key. The keys tried: the request's own texts that are keys, and the
    /// literal prefixes of its patterns.
    static func checkSelection(_ selection: KeySelection, of request: ControlRequest, nearKeys texts: [String]) throws(Violation) {
        try require((request.patterns?.count ?? 0) <= ControlRequest.maxPatterns, "a selection of \(request.patterns?.count ?? 0) patterns was accepted")
        let patterns = texts.compactMap { try? Pattern($0) }
        let keys = (texts + patterns.map(\.literalPrefix)).compactMap { try? Key($0) }
        let scan = selection.scanPrefix
        for key in keys where selection.contains(key) {
            if let scan {
                try require(key == scan || key.path.hasPrefix(scan.path + "/"), "\(key) is selected but lies outside the scan of \(scan)")
            }
            try require(selection.contains(path: key.path), "\(key) is selected, but not when read back as text")
        }
    }

    /// Field names, operation names and JSON literals.
    static let tokens = ["\"id\":", "\"op\":", "\"key\":", "\"prefix\":", "\"pattern\":", "\"patterns\":", "\"value\":", "\"object\":",
        "\"grants\":", "\"includeTombstones\":", "\"includeEncoding\":", "\"limit\":", "\"after\":", "\"peer\":", "true", "null", "\"/app/**\""]
        + ["get", "list", "watch", "unwatch", "put", "mint", "delete", "grants-add", "grants-list", "revoke", "status", "sync"].map { "\"\($0)\"" }

    static func seedRequests() -> [ControlRequest] {
        let objects = SeedObjects.self
        func request(_ id: UInt64, _ op: ControlRequest.Operation, _ fill: (inout ControlRequest) -> Void = { _ in }) -> ControlRequest {
            var r = ControlRequest(id: id, op: op)
            fill(&r)
            return r
        }
        return [
            request(1, .get) { $0.key = "/app/db/url"; $0.includeTombstones = true },
            request(2, .list) { $0.prefix = "/app"; $0.limit = 100; $0.after = "/app/db/url"; $0.includeEncoding = true },
            request(10, .list) { $0.patterns = ["/app/*/version", "/shared/**", "/app/db/url"] },
            request(3, .watch) { $0.pattern = "/app/*/version" },
            request(4, .put) { $0.object = Data(objects.vectorRecord.encoded) },
            request(5, .mint) { $0.key = "/app/web/version"; $0.value = Data("1.2.3".utf8) },
            request(6, .grantsAdd) { $0.grants = objects.grants.map { Data($0.encoded) } },
            request(7, .revoke) { $0.object = Data(objects.issuerRevocation.encoded) },
            request(8, .sync) { $0.peer = "10.0.0.2:7947" },
            request(9, .status),
        ]
    }
}
