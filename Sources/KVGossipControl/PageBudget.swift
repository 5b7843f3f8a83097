/// How much one reply frame may carry: a number of records and an estimate of their JSON size.
/// The first record is always admitted, so a page makes progress however large one record is.
struct PageBudget {
    let maxRecords: Int
    let maxBytes: Int
    private(set) var records = 0
    private(set) var bytes = 0

    init(maxRecords: Int, maxBytes: Int) {
        self.maxRecords = max(1, maxRecords)
        self.maxBytes = maxBytes
    }

    /// Counts `info` in if it fits (or is the first); false when the page is full without it.
    mutating func admit(_ info: RecordInfo) -> Bool {
        let size = PageBudget.estimatedBytes(info)
        guard records == 0 || (records < maxRecords && bytes + size <= maxBytes) else { return false }
        records += 1
        bytes += size
        return true
    }

    /// JSON bytes of one record, from above: bytes travel in base64 (4 per 3), the key and chain
    /// lines at worst fully escaped (2 per byte), the other fields as they are, plus the field
    /// names and punctuation (under 200 bytes).
    static func estimatedBytes(_ info: RecordInfo) -> Int {
        let binary = (info.encoded?.count ?? info.value.count)
        let escapable = info.key.utf8.count + info.chain.reduce(0) { $0 + $1.utf8.count + 3 }
        let plain = info.time.utf8.count + info.signer.utf8.count + info.digest.utf8.count + info.state.utf8.count
        return (binary + 2) / 3 * 4 + 2 * escapable + plain + 200
    }
}
