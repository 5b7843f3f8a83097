/// One decoder that reads bytes from outside, and what must hold for every input it is given
/// (Docs/security.md §Fuzzing). The same check runs under libFuzzer (`Fuzz/`, `Scripts/fuzz`) and,
/// without a sanitizer, in the test suite over the regression corpus and the seeds.
public struct FuzzTarget: Sendable {
    /// What one input did.
    public enum Outcome: Sendable, Equatable {
        /// The decoder refused the input (or it was incomplete): fine, nothing more to check.
        case refused
        /// The input decoded and every invariant held.
        case decoded
        /// The input decoded but a promise of the format broke (a crash is the other failure).
        case violated(String)
    }

    /// The name `Scripts/fuzz` and the regression corpus directory use.
    public let name: String
    /// Inputs larger than this are not generated: enough for every field and a few nested objects,
    /// small enough to keep executions fast.
    public let maxInputBytes: Int
    /// Tokens for libFuzzer's dictionary (field names, tags), so mutations can speak the format.
    public let dictionary: [String]
    /// Valid inputs to start from: the objects of Docs/protocol.md §Test vectors and their kin.
    public let seeds: @Sendable () -> [[UInt8]]
    private let body: @Sendable ([UInt8]) throws(Violation) -> Bool

    init(
        _ name: String, maxInputBytes: Int = 4096, dictionary: [String] = [], seeds: @escaping @Sendable () -> [[UInt8]],
        check body: @escaping @Sendable ([UInt8]) throws(Violation) -> Bool
    ) {
        self.name = name
        self.maxInputBytes = maxInputBytes
        self.dictionary = dictionary
        self.seeds = seeds
        self.body = body
    }

    /// Decodes `input` as production does and checks the invariants on what came out.
    public func check(_ input: [UInt8]) -> Outcome {
        do throws(Violation) {
            return try body(input) ? .decoded : .refused
        } catch {
            return .violated(error.text)
        }
    }
}

/// A broken invariant, with what broke.
struct Violation: Error {
    let text: String
}

/// Fails the check with `text` unless `condition` holds.
func require(_ condition: Bool, _ text: @autoclosure () -> String) throws(Violation) {
    if !condition { throw Violation(text: text()) }
}

/// The value of `decode`, which must succeed: used where the format promises that what the encoder
/// wrote, the decoder reads.
func mustDecode<T, E: Error>(_ what: @autoclosure () -> String, _ decode: () throws(E) -> T) throws(Violation) -> T {
    do throws(E) {
        return try decode()
    } catch {
        throw Violation(text: "\(what()) does not decode: \(error)")
    }
}

/// Every target, by name.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        SignedObjectTargets.grant, SignedObjectTargets.record, SignedObjectTargets.revocation,
        SyncTargets.message, SyncTargets.treeHash,
        LinkTargets.handshake, LinkTargets.identity,
        TextTargets.armor, TextTargets.keyText,
        ControlTarget.request,
        SerfTargets.msgpack, SerfTargets.stream,
    ]

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}
