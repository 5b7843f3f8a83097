/// The text form of signed objects in files: PEM-like blocks of base64url, several per file (a
/// proof file holds a whole chain). Text survives copy-paste, email and config management.
public enum Armor {
    public enum Kind: String, Sendable, CaseIterable {
        case grant = "GRANT"
        case revocation = "REVOCATION"
        case record = "RECORD"
    }

    public struct Block: Sendable, Equatable {
        public let kind: Kind
        public let bytes: [UInt8]
    }

    public static func render(_ kind: Kind, _ bytes: [UInt8]) -> String {
        let body = Base64URL.encode(bytes)
        var lines = ["-----BEGIN KVGOSSIP \(kind.rawValue)-----"]
        var i = body.startIndex
        while i < body.endIndex {
            let j = body.index(i, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[i..<j]))
            i = j
        }
        lines.append("-----END KVGOSSIP \(kind.rawValue)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Every block in `text`, in order. Text outside blocks (comments) is ignored; a damaged block
    /// is an error that names its line. Lines end in LF or CRLF (a Swift `Character` holds CRLF
    /// whole, so splitting on "\n" alone would see a CRLF file as one line, with no blocks).
    public static func parse(_ text: String) throws(Refusal) -> [Block] {
        var blocks: [Block] = []
        var current: (kind: Kind, line: Int, body: String)?
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (n, raw) in lines.enumerated() {
            let line = raw.trimmingASCIIWhitespace()
            if let open = current {
                if line == "-----END KVGOSSIP \(open.kind.rawValue)-----" {
                    guard let bytes = Base64URL.decode(open.body) else {
                        throw Refusal(.malformed, "the \(open.kind.rawValue.lowercased()) block at line \(open.line) is not valid base64url")
                    }
                    blocks.append(Block(kind: open.kind, bytes: bytes))
                    current = nil
                } else if line.hasPrefix("-----BEGIN ") || line.hasPrefix("-----END ") {
                    // Only a marker (it has a space, which base64url has not) is out of place here: a
                    // body line may well start with "-----", as "-" is a base64url digit.
                    throw Refusal(.malformed, "line \(n + 1): unexpected \(line) inside the block opened at line \(open.line)")
                } else {
                    current!.body += line
                }
            } else if line.hasPrefix("-----BEGIN KVGOSSIP "), line.hasSuffix("-----") {
                let name = String(line.dropFirst("-----BEGIN KVGOSSIP ".count).dropLast(5))
                guard let kind = Kind(rawValue: name) else { throw Refusal(.malformed, "line \(n + 1): unknown block type \(name)") }
                current = (kind, n + 1, "")
            }
        }
        if let open = current { throw Refusal(.malformed, "the block opened at line \(open.line) has no END line") }
        return blocks
    }
}
