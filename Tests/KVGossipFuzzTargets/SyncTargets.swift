import KVGossipCore

/// What a peer sends: sync messages sealed in link frames (Docs/protocol.md §Sessions) and the
/// tree-hash announcement in Serf queries (Docs/contract.md §Serf).
enum SyncTargets {
    /// Decoded with the production limits. What the encoder writes, the decoder must read; a message
    /// re-encodes to its own bytes, except that `results` and `failure` normalise their free text
    /// (unknown reason codes, over-long or invalid UTF-8) once, after which the bytes are a fixed point.
    static let message = FuzzTarget(
        "sync", maxInputBytes: 8192, dictionary: SignedObjectTargets.patternTokens,
        seeds: { seedMessages().map(SyncMessageCodec.encode) }
    ) { input throws(Violation) in
        // The encoder side: any text a node sends in `failure` reaches the peer as valid UTF-8.
        let failure = SyncMessageCodec.encode(.failure(String(decoding: input, as: UTF8.self)))
        let sent = try mustDecode("a failure message's encoding") { () throws(Refusal) in try SyncMessageCodec.decode(failure) }
        try require(SyncMessageCodec.encode(sent) == failure, "a failure message changes on its way through a peer")
        guard let message = try? SyncMessageCodec.decode(input, limits: .default) else { return false }
        let encoded = SyncMessageCodec.encode(message)
        let again = try mustDecode("a sync message's encoding") { () throws(Refusal) in try SyncMessageCodec.decode(encoded) }
        if carriesFreeText(message) {
            try require(SyncMessageCodec.encode(again) == encoded, "a re-encoded \(kind(message)) message changes again on the next round trip")
        } else {
            try require(encoded == input, "a \(kind(message)) message re-encodes to different bytes")
            try require(again == message, "a \(kind(message)) message decodes differently from its own encoding")
        }
        return true
    }

    static let treeHash = FuzzTarget(
        "tree-hash", dictionary: ["KVH1"], seeds: { seedAnnouncements().map(\.encoded) }
    ) { input throws(Violation) in
        // The encoder side: whatever this node is called, its announcement decodes.
        let name = String(decoding: input, as: UTF8.self)
        let own = TreeHashAnnouncement(cluster: anyCluster, treeHash: .zero, syncPort: 7947, nodeName: name)
        let heard = try mustDecode("an announcement by a node called \(name.debugDescription.prefix(40))") { () throws(Refusal) in
            try TreeHashAnnouncement(decoding: own.encoded)
        }
        try require(name.utf8.starts(with: heard.nodeName.utf8), "an announcement carries another node name")
        guard let announcement = try? TreeHashAnnouncement(decoding: input) else { return false }
        try require(announcement.encoded == input, "an announcement re-encodes to different bytes")
        let again = try mustDecode("an announcement's encoding") { () throws(Refusal) in try TreeHashAnnouncement(decoding: announcement.encoded) }
        try require(again == announcement, "an announcement decodes differently from its own encoding")
        return true
    }

    /// Not the seeds' cluster: building those objects during a run would leave globals that
    /// LeakSanitizer cannot trace through (see the harness), reported as leaks.
    private static let anyCluster = PublicKey(bytes: [UInt8](repeating: 0x42, count: PublicKey.byteCount))!

    private static func carriesFreeText(_ message: SyncMessage) -> Bool {
        switch message {
        case .results, .failure: true
        default: false
        }
    }

    private static func kind(_ message: SyncMessage) -> String {
        String(describing: message).prefix { $0 != "(" }.description
    }

    /// One of each message type, carrying the seed objects.
    static func seedMessages() -> [SyncMessage] {
        let objects = SeedObjects.self
        let hash = SummaryEntries.treeHash(records: .zero, revocations: .zero)
        let entry = SummaryEntries.entry(for: objects.vectorRecord)
        let children = (0..<16).map { Hash256.of([UInt8($0)]) }
        return [
            .open(.full, hash),
            .open(.push, .zero),
            .opened(hash),
            .announce(hash),
            .viewRequest([
                ViewQuery(space: .records, prefix: .root, entries: false),
                ViewQuery(space: .revocations, prefix: NibblePath(nibbles: [3, 15])!, entries: true),
            ]),
            .views([
                ViewAnswer(query: ViewQuery(space: .records, prefix: .root, entries: false), view: .internal(children)),
                ViewAnswer(query: ViewQuery(space: .records, prefix: NibblePath(nibbles: [3])!, entries: true), view: .leaf([entry])),
                ViewAnswer(query: ViewQuery(space: .revocations, prefix: .root, entries: false), view: .empty),
            ]),
            .records(objects.records),
            .pulled([objects.vectorRecord, objects.tombstone], last: true),
            .revocations(objects.revocations),
            .pull(records: [entry.id], revocations: [objects.vectorGrant.id]),
            .results([
                PushResult(code: .accepted),
                PushResult(code: .refused, reason: .revoked, detail: "grant revoked", revocations: [objects.vectorRevocation]),
                PushResult(code: .superseded, detail: "a newer value is held"),
            ]),
            .done(hash),
            .failure("different cluster"),
        ]
    }

    static func seedAnnouncements() -> [TreeHashAnnouncement] {
        let hash = SummaryEntries.treeHash(records: .zero, revocations: .zero)
        return [
            TreeHashAnnouncement(cluster: SeedObjects.cluster, treeHash: hash, syncPort: 7947, nodeName: "host-a-c5e21ab1c9f6022d"),
            TreeHashAnnouncement(cluster: SeedObjects.cluster, treeHash: .zero, syncPort: 0, nodeName: ""),
        ]
    }
}
