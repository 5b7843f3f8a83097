/// What a decoded message holds in memory, estimated from its frame and the objects it decoded to:
/// what a link counts against its bound of unhandled bytes (`LinkOptions.queuedBytesPerLink`).
///
/// A frame's bytes are not enough: decoded objects keep their encodings beside their fields, and
/// each object, down to a grant's pattern texts, is an allocation of its own. A 4 MiB frame of 256
/// records whose pools hold 8,192 grants of 16 short patterns each decoded to about 20 MiB in a
/// helper's attack, where a frame of 256 records of 16 KB values decodes to about twice its bytes.
/// So: twice the frame, and `perObject` for every object, pattern texts included.
extension SyncMessage {
    public static let perObject = 128

    public func heldSize(frameBytes: Int) -> Int {
        2 * frameBytes + Self.perObject * objectCount
    }

    /// Records, grants, pattern texts, revocations, results, queries, views and their entries, and
    /// positions.
    var objectCount: Int {
        switch self {
        case .open, .opened, .done, .failure, .announce:
            return 1
        case .viewRequest(let queries):
            return 1 + queries.count
        case .views(let answers):
            return 1 + answers.reduce(0) { sum, answer in
                switch answer.view {
                case .empty: sum + 1
                case .leaf(let entries): sum + 1 + entries.count
                case .internal(let children): sum + 1 + children.count
                }
            }
        case .records(let records), .pulled(let records, _):
            return 1 + records.reduce(0) { $0 + 1 + Self.objects(in: $1.pool) }
        case .revocations(let revocations):
            return 1 + Self.objects(in: revocations)
        case .pull(let records, let revocations):
            return 1 + records.count + revocations.count
        case .results(let results):
            return 1 + results.reduce(0) { $0 + 1 + Self.objects(in: $1.revocations) }
        }
    }

    private static func objects(in grants: [Grant]) -> Int {
        grants.reduce(0) { $0 + 1 + $1.patternTexts.count }
    }

    private static func objects(in revocations: [Revocation]) -> Int {
        revocations.reduce(0) { $0 + 1 + objects(in: $1.grant.map { [$0] } ?? []) + objects(in: $1.proof) }
    }
}
