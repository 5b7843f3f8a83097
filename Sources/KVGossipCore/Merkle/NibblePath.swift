/// A position in the Merkle trie: the first `depth` nibbles (4-bit digits, high nibble of each byte
/// first) of an entry id. The root is the empty path; a full 64-nibble path names a single id.
///
/// Ordering is lexicographic over nibbles with a prefix before its extensions, which is the
/// pre-order of a depth-first walk (root, 0, 00, …, 01, …, 1, …).
public struct NibblePath: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of nibbles in a 256-bit id, and so the greatest depth.
    public static let maxDepth = 64

    /// The empty prefix, covering every id.
    public static let root = NibblePath(words: .zero, depth: 0)

    /// Nibbles past `depth` are always zero, so the synthesised equality and hashing are exact.
    private let words: PackedWords256

    /// The number of nibbles in the path, 0...64.
    public let depth: Int

    private init(words: PackedWords256, depth: Int) {
        self.words = words
        self.depth = depth
    }

    /// A path from nibble values, each 0...15; nil if any is out of range or there are more than 64.
    public init?(nibbles: [UInt8]) {
        guard nibbles.count <= Self.maxDepth, nibbles.allSatisfy({ $0 < 16 }) else { return nil }
        var words = PackedWords256.zero
        for (index, nibble) in nibbles.enumerated() {
            words.setNibble(nibble, at: index)
        }
        self.init(words: words, depth: nibbles.count)
    }

    /// The first `depth` nibbles of `id`.
    public init(prefixOf id: Hash256, depth: Int) {
        precondition((0...Self.maxDepth).contains(depth), "NibblePath depth out of range")
        self.init(words: PackedWords256(id) & .prefixMask(nibbles: depth), depth: depth)
    }

    /// Parses the `hex` form (one lower- or upper-case hex digit per nibble; empty for the root).
    public init?(hex: String) {
        var nibbles: [UInt8] = []
        for character in hex.utf8 {
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibbles.append(character - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibbles.append(character - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibbles.append(character - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        self.init(nibbles: nibbles)
    }

    /// Nibble `index` of an id, counting from the most significant (0...63).
    public static func nibble(of id: Hash256, at index: Int) -> UInt8 {
        let byte = id.byte(at: index >> 1)
        return index & 1 == 0 ? byte >> 4 : byte & 0x0F
    }

    /// The nibble at `index` (0..<depth).
    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < depth, "NibblePath index out of range")
        return words.nibble(at: index)
    }

    /// The nibble values, one per element.
    public var nibbles: [UInt8] {
        (0..<depth).map { words.nibble(at: $0) }
    }

    /// The path one nibble longer.
    public func child(_ nibble: UInt8) -> NibblePath {
        precondition(depth < Self.maxDepth, "NibblePath at full depth has no children")
        precondition(nibble < 16, "nibble out of range")
        var extended = words
        extended.setNibble(nibble, at: depth)
        return NibblePath(words: extended, depth: depth + 1)
    }

    /// The path one nibble shorter; nil at the root.
    public var parent: NibblePath? {
        guard depth > 0 else { return nil }
        return NibblePath(words: words & .prefixMask(nibbles: depth - 1), depth: depth - 1)
    }

    /// Whether `id` starts with this path.
    public func contains(_ id: Hash256) -> Bool {
        (PackedWords256(id) & .prefixMask(nibbles: depth)) == words
    }

    /// Whether `other` starts with this path (a path is a prefix of itself).
    public func isPrefix(of other: NibblePath) -> Bool {
        other.depth >= depth && (other.words & .prefixMask(nibbles: depth)) == words
    }

    /// The smallest id under this path, as 32 bytes: the path followed by zero nibbles.
    /// With `upperBound`, lets a store select the path's entries as `id BETWEEN lower AND upper`.
    public var lowerBound: [UInt8] { words.bytes }

    /// The greatest id under this path, as 32 bytes: the path followed by 0xF nibbles.
    public var upperBound: [UInt8] { (words | ~PackedWords256.prefixMask(nibbles: depth)).bytes }

    var lowerWords: PackedWords256 { words }
    var upperWords: PackedWords256 { words | ~PackedWords256.prefixMask(nibbles: depth) }

    /// One hex digit per nibble (empty for the root); suitable as a storage key, and its
    /// byte order matches `<`, so a subtree is a contiguous key range.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: (0..<depth).map { digits[Int(words.nibble(at: $0))] }, as: UTF8.self)
    }

    public var description: String { depth == 0 ? "<root>" : hex }

    public static func < (lhs: NibblePath, rhs: NibblePath) -> Bool {
        // Padding nibbles are zero, the least value, so equal words mean one is a prefix of the other.
        if lhs.words != rhs.words { return lhs.words < rhs.words }
        return lhs.depth < rhs.depth
    }
}
