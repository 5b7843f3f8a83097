import KVGossipCore

/// Files a person hands to the tools (Docs/protocol.md §Text forms): armored grants, revocations
/// and records, secret key files, public keys and the cluster secret. Read as UTF-8, as the CLI does.
enum TextTargets {
    static let armor = FuzzTarget(
        "armor", maxInputBytes: 8192,
        dictionary: Armor.Kind.allCases.flatMap { ["-----BEGIN KVGOSSIP \($0.rawValue)-----", "-----END KVGOSSIP \($0.rawValue)-----"] },
        seeds: { armorSeeds().map { Array($0.utf8) } }
    ) { input throws(Violation) in
        guard let text = String(validating: input, as: UTF8.self) else { return false }
        let blocks = try? Armor.parse(text)
        // The same file saved with CRLF line endings (an editor, an email) holds the same blocks.
        try require((try? Armor.parse(text.replacing("\n", with: "\r\n"))) == blocks, "CRLF line endings change what the file holds")
        guard let blocks else { return false }
        let rendered = blocks.map { Armor.render($0.kind, $0.bytes) }.joined()
        let again = try mustDecode("rendered blocks") { () throws(Refusal) in try Armor.parse(rendered) }
        try require(again == blocks, "rendered blocks parse to different blocks")
        for block in blocks { try checkObject(block) }
        return true
    }

    static let keyText = FuzzTarget(
        "key-text", dictionary: [SecretKeyFile.prefix, PublicKey.textPrefix], seeds: { keyTextSeeds().map { Array($0.utf8) } }
    ) { input throws(Violation) in
        guard let text = String(validating: input, as: UTF8.self) else { return false }
        var decoded = false
        if let key = try? SecretKeyFile.parse(text, mode: 0o600, path: "key") {
            decoded = true
            let again = try mustDecode("a rendered secret key file") { () throws(KeyTextError) in
                try SecretKeyFile.parse(SecretKeyFile.render(key), mode: 0o600, path: "key")
            }
            try require(again.seed == key.seed && again.publicKey == key.publicKey, "a rendered secret key file holds another key")
            let crlf = try? SecretKeyFile.parse(text + "\r\n", mode: 0o600, path: "key")
            try require(crlf?.seed == key.seed, "a CRLF line ending changes the secret key file")
            try require((try? SecretKeyFile.parse(text, mode: 0o640, path: "key")) == nil, "a group-readable secret key file was accepted")
        }
        if let key = try? PublicKey(text: text) {
            decoded = true
            // Strict base64url: one spelling per key, so the text is the key's own text plus spaces.
            try require(trimmed(text) == key.text, "public key text \(key.text) was read from other text")
            try require((try? PublicKey(text: key.text)) == key, "a public key's text reads back as another key")
        }
        if ClusterSecret(text: text) != nil { decoded = true }
        if let bytes = Base64URL.decode(text) {
            decoded = true
            try require(Base64URL.encode(bytes) == text, "base64url text that is not the canonical spelling was accepted")
        }
        return decoded
    }

    /// Decodes a block as `kvgossip inspect` does, and checks the object like its own target.
    private static func checkObject(_ block: Armor.Block) throws(Violation) {
        switch block.kind {
        case .grant:
            if let grant = try? Grant(decoding: block.bytes) { try SignedObjectTargets.checkGrant(grant, encoding: block.bytes) }
        case .record:
            if let record = try? Record(decoding: block.bytes) { try SignedObjectTargets.checkRecord(record, encoding: block.bytes) }
        case .revocation:
            if let revocation = try? Revocation(decoding: block.bytes) {
                try SignedObjectTargets.checkRevocation(revocation, encoding: block.bytes)
            }
        }
    }

    /// `text` without leading and trailing spaces, tabs and line endings.
    private static func trimmed(_ text: String) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0.isNewline }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else { return "" }
        return text[first...last]
    }

    /// A proof file as `kvgossip grant` writes it (comments around blocks), and one of each kind.
    static func armorSeeds() -> [String] {
        let objects = SeedObjects.self
        let proof = "# ci runner proof\n" + Armor.render(.grant, objects.subGrant.encoded) + "\n"
            + Armor.render(.grant, objects.teamGrant.encoded)
        return [
            proof,
            Armor.render(.record, objects.chainedRecord.encoded),
            Armor.render(.revocation, objects.issuerRevocation.encoded) + Armor.render(.revocation, objects.vectorRevocation.encoded),
        ]
    }

    static func keyTextSeeds() -> [String] {
        [
            SecretKeyFile.render(SeedObjects.root),
            SeedObjects.writer.publicKey.text + "\n",
            Base64URL.encode([UInt8](repeating: 0x5A, count: 32)) + "\n",
        ]
    }
}
