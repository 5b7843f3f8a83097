import Foundation
import KVGossipCore
import KVGossipStore

/// One bounded answer: records in key order and, unless it is the last, the key to resume after.
public struct RecordPage: Sendable, Equatable {
    public var records: [RecordInfo]
    public var next: String?
}

extension ControlHandler {
    /// The records `selection` picks, in key order, strictly after `cursor`: at most `limit`
    /// (and `limits.pageRecords`) records and about `limits.pageBytes` of JSON, examining at most
    /// `limits.scanRows` rows. Reads one snapshot; successive pages may see later commits, but
    /// never show a key twice or out of order.
    func page(
        _ selection: KeySelection, after cursor: String?, limit: Int? = nil, tombstones: Bool, encoding: Bool
    ) throws -> RecordPage {
        var budget = PageBudget(maxRecords: min(limit ?? limits.pageRecords, limits.pageRecords), maxBytes: limits.pageBytes)
        var records: [RecordInfo] = []
        // One key is the first row under itself; what lies below it is not selected.
        let rowLimit = selection.singleKey == nil ? limits.scanRows : 1
        let next = try node.store.scanRecords(under: selection.scanPrefix, after: cursor, rowLimit: rowLimit) { path, kind, load in
            guard kind == .value || tombstones, selection.contains(path: path) else { return .next }
            let info = info(try load(), withEncoding: encoding)
            guard budget.admit(info) else { return .stopBefore }
            records.append(info)
            return .next
        }
        return RecordPage(records: records, next: selection.singleKey == nil ? next : nil)
    }

    func list(_ req: ControlRequest) throws -> ControlResponse {
        let selection = try KeySelection(req)
        if case .patterns(let patterns) = selection { return try snapshot(patterns, req) }
        if let limit = req.limit, limit < 1 { throw ControlError(reason: "bad-request", message: "limit must be at least 1") }
        let page = try page(selection, after: req.after, limit: req.limit, tombstones: req.includeTombstones == true, encoding: req.includeEncoding == true)
        // A client that does not page (it sent no limit) gets all or a refusal, never a silent part.
        if req.limit == nil, page.next != nil {
            throw ControlError(
                reason: "too-large",
                message: "the selection does not fit in one answer (\(limits.pageRecords) records, about \(limits.pageBytes) bytes); ask with limit and after (Docs/protocol.md §Control API)")
        }
        var r = ControlResponse(id: req.id)
        r.records = page.records
        r.next = page.next
        return r
    }

    /// A `list` with `patterns`: one answer read in one store transaction (one moment of the node),
    /// never paged, since pages would be read at different moments. Bounded like a page, with ten
    /// pages' worth of rows to examine; a larger selection is refused with `too-large`.
    private func snapshot(_ patterns: [Pattern], _ req: ControlRequest) throws -> ControlResponse {
        let tombstones = req.includeTombstones == true
        let encoding = req.includeEncoding == true
        var budget = PageBudget(maxRecords: limits.pageRecords, maxBytes: limits.pageBytes)
        var infos: [RecordInfo] = []
        let (_, complete) = try node.store.records(matchingAny: patterns, rowLimit: 10 * limits.scanRows) { record in
            guard record.kind == .value || tombstones else { return true }
            let info = info(record, withEncoding: encoding)
            guard budget.admit(info) else { return false }
            infos.append(info)
            return true
        }
        guard complete else {
            throw ControlError(
                reason: "too-large",
                message: "the patterns select more than one answer holds (\(limits.pageRecords) records, about \(limits.pageBytes) bytes, \(10 * limits.scanRows) keys examined); narrow them")
        }
        var r = ControlResponse(id: req.id)
        r.records = infos.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return r
    }
}
