/// Byte layout of sync messages: a u8 type, then the fields with `ByteWriter`'s fixed widths.
/// Decoding refuses anything malformed with a reason, and counts larger than the message could hold;
/// the per-session bounds (`SyncLimits`) are the session's to enforce.
public enum SyncMessageCodec {
    enum Tag: UInt8 {
        case open = 1, viewRequest, views, records, revocations, pull, results, done, failure, pulled, opened, announce
    }

    public static func encode(_ message: SyncMessage) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        switch message {
        case .open(let kind, let hash):
            w.u8(Tag.open.rawValue)
            w.u8(kind.rawValue)
            w.fixed(hash.bytes)
        case .opened(let hash):
            w.u8(Tag.opened.rawValue)
            w.fixed(hash.bytes)
        case .announce(let hash):
            w.u8(Tag.announce.rawValue)
            w.fixed(hash.bytes)
        case .viewRequest(let queries):
            w.u8(Tag.viewRequest.rawValue)
            w.u32(UInt32(queries.count))
            for q in queries { write(q, &w) }
        case .views(let answers):
            w.u8(Tag.views.rawValue)
            w.u32(UInt32(answers.count))
            for a in answers {
                write(a.query, &w)
                switch a.view {
                case .empty:
                    w.u8(0)
                case .leaf(let entries):
                    w.u8(1)
                    w.u32(UInt32(entries.count))
                    for e in entries {
                        w.fixed(e.id.bytes)
                        w.fixed(e.digest.bytes)
                    }
                case .internal(let children):
                    w.u8(2)
                    for c in children { w.fixed(c.bytes) }
                }
            }
        case .records(let records):
            w.u8(Tag.records.rawValue)
            w.u32(UInt32(records.count))
            for r in records { w.long(r.encoded) }
        case .pulled(let records, let last):
            w.u8(Tag.pulled.rawValue)
            w.u8(last ? 1 : 0)
            w.u32(UInt32(records.count))
            for r in records { w.long(r.encoded) }
        case .revocations(let revocations):
            w.u8(Tag.revocations.rawValue)
            w.u32(UInt32(revocations.count))
            for r in revocations { w.long(r.encoded) }
        case .pull(let records, let revocations):
            w.u8(Tag.pull.rawValue)
            w.u32(UInt32(records.count))
            for id in records { w.fixed(id.bytes) }
            w.u32(UInt32(revocations.count))
            for id in revocations { w.fixed(id.bytes) }
        case .results(let results):
            w.u8(Tag.results.rawValue)
            w.u32(UInt32(results.count))
            for r in results {
                w.u8(r.code.rawValue)
                w.short(Array((r.reason?.rawValue ?? "").utf8))
                w.shortText(r.detail, maxBytes: 1000)
                w.u32(UInt32(r.revocations.count))
                for rev in r.revocations { w.long(rev.encoded) }
            }
        case .done(let hash):
            w.u8(Tag.done.rawValue)
            w.fixed(hash.bytes)
        case .failure(let text):
            w.u8(Tag.failure.rawValue)
            w.shortText(text, maxBytes: 1000)
        }
        return w.bytes
    }

    /// Decodes one message. Counts are held to what a session may take (`session`: records and
    /// revocations per batch, queries per request, entries per view, positions per pull), so a
    /// message no session would accept is refused before it is decoded whole.
    public static func decode(_ bytes: [UInt8], limits: Limits = .default, session: SyncLimits = .default) throws(Refusal) -> SyncMessage {
        var r = ByteReader(bytes)
        guard let tag = Tag(rawValue: try r.u8("message type")) else { throw Refusal(.malformed, "unknown sync message type") }
        let message: SyncMessage
        switch tag {
        case .open:
            guard let kind = SessionKind(rawValue: try r.u8("session kind")) else { throw Refusal(.malformed, "unknown session kind") }
            message = .open(kind, try r.hash("tree hash"))
        case .opened:
            message = .opened(try r.hash("tree hash"))
        case .announce:
            message = .announce(try r.hash("tree hash"))
        case .viewRequest:
            let n = try count(&r, max: session.queriesPerRequest, "view queries")
            var queries: [ViewQuery] = []
            for _ in 0..<n { queries.append(try readQuery(&r)) }
            message = .viewRequest(queries)
        case .views:
            let n = try count(&r, max: session.queriesPerRequest, "views")
            var answers: [ViewAnswer] = []
            for _ in 0..<n {
                let q = try readQuery(&r)
                switch try r.u8("view kind") {
                case 0:
                    answers.append(ViewAnswer(query: q, view: .empty))
                case 1:
                    let m = try count(&r, max: session.maxEntriesView, "entries")
                    var entries: [MerkleEntry] = []
                    entries.reserveCapacity(m)
                    for _ in 0..<m { entries.append(MerkleEntry(id: try r.hash("id"), digest: try r.hash("digest"))) }
                    answers.append(ViewAnswer(query: q, view: .leaf(entries)))
                case 2:
                    var children: [Hash256] = []
                    for _ in 0..<MerkleInternalNode.childCount { children.append(try r.hash("child hash")) }
                    answers.append(ViewAnswer(query: q, view: .internal(children)))
                default:
                    throw Refusal(.malformed, "unknown view kind")
                }
            }
            message = .views(answers)
        case .records:
            let n = try count(&r, max: session.batchRecords, "records")
            var records: [Record] = []
            for _ in 0..<n { records.append(try Record(decoding: try r.long("record", max: limits.maxFrameBytes), limits: limits)) }
            message = .records(records)
        case .pulled:
            let last = try r.u8("last flag")
            guard last <= 1 else { throw Refusal(.malformed, "bad last flag") }
            let n = try count(&r, max: session.batchRecords, "records")
            var records: [Record] = []
            for _ in 0..<n { records.append(try Record(decoding: try r.long("record", max: limits.maxFrameBytes), limits: limits)) }
            message = .pulled(records, last: last == 1)
        case .revocations:
            let n = try count(&r, max: session.batchRevocations, "revocations")
            var revs: [Revocation] = []
            for _ in 0..<n { revs.append(try Revocation(decoding: try r.long("revocation", max: 1 << 20), limits: limits)) }
            message = .revocations(revs)
        case .pull:
            let n = try count(&r, max: session.pullChunk, "record ids")
            var records: [Hash256] = []
            for _ in 0..<n { records.append(try r.hash("record id")) }
            let m = try count(&r, max: session.pullChunk, "revocation ids")
            var revocations: [Hash256] = []
            for _ in 0..<m { revocations.append(try r.hash("revocation id")) }
            message = .pull(records: records, revocations: revocations)
        case .results:
            let n = try count(&r, max: session.batchRecords, "results")
            var results: [PushResult] = []
            for _ in 0..<n {
                guard let code = PushResult.Code(rawValue: try r.u8("result code")) else { throw Refusal(.malformed, "unknown result code") }
                let reasonText = String(decoding: try r.short("reason", max: 64), as: UTF8.self)
                let detail = String(decoding: try r.short("detail", max: 4096), as: UTF8.self)
                // A refusal for revoked grants carries the revocations of one chain's grants.
                let m = try count(&r, max: limits.maxChainLength, "revocations")
                var revs: [Revocation] = []
                for _ in 0..<m { revs.append(try Revocation(decoding: try r.long("revocation", max: 1 << 20), limits: limits)) }
                results.append(PushResult(code: code, reason: RefusalReason(rawValue: reasonText), detail: detail, revocations: revs))
            }
            message = .results(results)
        case .done:
            message = .done(try r.hash("tree hash"))
        case .failure:
            message = .failure(String(decoding: try r.short("failure", max: 4096), as: UTF8.self))
        }
        try r.expectEnd("sync message")
        return message
    }

    private static func write(_ q: ViewQuery, _ w: inout ByteWriter) {
        w.u8(q.space.rawValue)
        w.u8(q.entries ? 1 : 0)
        w.u8(UInt8(q.prefix.depth))
        w.fixed(q.prefix.nibbles)
    }

    private static func readQuery(_ r: inout ByteReader) throws(Refusal) -> ViewQuery {
        guard let space = SummarySpace(rawValue: try r.u8("space")) else { throw Refusal(.malformed, "unknown summary space") }
        let entries = try r.u8("entries flag")
        let depth = Int(try r.u8("prefix depth"))
        guard entries <= 1, depth <= NibblePath.maxDepth else { throw Refusal(.malformed, "bad view query") }
        guard let prefix = NibblePath(nibbles: try r.fixed(depth, "prefix")) else { throw Refusal(.malformed, "bad prefix nibbles") }
        return ViewQuery(space: space, prefix: prefix, entries: entries == 1)
    }

    private static func count(_ r: inout ByteReader, max: Int, _ what: String) throws(Refusal) -> Int {
        let n = Int(try r.u32("\(what) count"))
        guard n <= max, n <= r.remaining else { throw Refusal(.tooLarge, "\(n) \(what) is more than the message can hold") }
        return n
    }
}
