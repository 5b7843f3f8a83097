import Testing
import KVGossipTestSupport
@testable import KVGossipCore

/// The reason `Key(text)` gives for rejecting `text`, or nil when it accepts it.
private func rejection(_ text: String) -> String? {
    do {
        _ = try Key(text)
        return nil
    } catch {
        return error.reason
    }
}

/// A key of `count` segments, each `segmentLength` bytes of `x`.
private func key(segments count: Int, segmentLength: Int = 1) -> String {
    String(repeating: "/" + String(repeating: "x", count: segmentLength), count: count)
}

/// A valid-looking key of exactly `length` bytes: four 200-byte segments and one filling the rest.
private func key(bytes length: Int) -> String {
    let head = key(segments: 4, segmentLength: 200)
    return head + "/" + String(repeating: "y", count: length - head.utf8.count - 1)
}

struct KeyTests {
    @Test(arguments: [
        "/a",
        "/app/db/url",
        "/a/b/c/d",
        "/A-Z_09",
        "/_.@+=,:-",
        "/a.",
        "/a..b",
        "/x/a.b.c",
        "/a-/-b",
    ])
    func acceptsValidKeys(text: String) throws {
        let key = try Key(text)
        #expect(key.path == text)
        #expect(key.description == text)
    }

    @Test func acceptsEveryAllowedPunctuationCharacter() throws {
        for character in "._@+=,:-" {
            #expect(rejection("/a\(character)b") == nil, "character \(character)")
        }
        #expect(rejection("/a._@+=,:-") == nil)
        #expect(rejection("/_@+=,:-.") == nil)
    }

    @Test(arguments: [
        ("", "empty"),
        ("/", "'/' alone is not a key"),
        ("a", "must start with /"),
        ("a/b", "must start with /"),
        (" /a", "must start with /"),
        ("/a/", "trailing slash"),
        ("/a/b/", "trailing slash"),
        ("//", "trailing slash"),
        ("//a", "empty segment"),
        ("/a//b", "empty segment"),
        ("/.", "segment \".\" is not allowed"),
        ("/..", "segment \"..\" is not allowed"),
        ("/a/../b", "segment \"..\" is not allowed"),
        ("/a/.", "segment \".\" is not allowed"),
        ("/.hidden", "segment \".hidden\" starts with '.'"),
        ("/a/.b/c", "segment \".b\" starts with '.'"),
        ("/a~", "segment \"a~\" ends with '~'"),
        ("/a/b~", "segment \"b~\" ends with '~'"),
        ("/a~b", "character '~' is not allowed"),
        ("/a*", "character '*' is not allowed"),
        ("/a?", "character '?' is not allowed"),
        ("/a/**", "character '*' is not allowed"),
        ("/[a]", "character '[' is not allowed"),
        ("/{a,b}", "character '{' is not allowed"),
        ("/a\\b", "character '\\' is not allowed"),
        ("/a b", "character ' ' is not allowed"),
        ("/a\tb", "character '\\t' is not allowed"),
        ("/café", "character 'é' is not allowed"),
        ("/日本", "character '日' is not allowed"),
        ("/a/\u{301}", "character '\u{301}' is not allowed"),
    ])
    func rejectsWithReason(text: String, reason: String) {
        #expect(rejection(text) == reason)
    }

    @Test func segmentLengthLimitIs255Bytes() {
        #expect(rejection(key(segments: 1, segmentLength: 255)) == nil)
        #expect(rejection(key(segments: 1, segmentLength: 256)) == "segment longer than 255 bytes")
        #expect(rejection("/a" + key(segments: 1, segmentLength: 256) + "/b") == "segment longer than 255 bytes")
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        #expect(rejection("/" + String(repeating: "é", count: 128)) == "segment longer than 255 bytes")
    }

    @Test func keyLengthLimitIs1024Bytes() {
        #expect(key(bytes: 1024).utf8.count == 1024)
        #expect(rejection(key(bytes: 1024)) == nil)
        #expect(key(bytes: 1025).utf8.count == 1025)
        #expect(rejection(key(bytes: 1025)) == "longer than 1024 bytes")
    }

    @Test func segmentCountLimitIs32() {
        #expect(rejection(key(segments: 32)) == nil)
        #expect(rejection(key(segments: 33)) == "more than 32 segments")
    }

    @Test func limitsArePublished() {
        #expect(Key.maxBytes == 1024)
        #expect(Key.maxSegments == 32)
        #expect(Key.maxSegmentBytes == 255)
    }

    @Test func errorDescriptionQuotesInputAndReason() {
        do {
            _ = try Key("/a//b")
            Issue.record("accepted an empty segment")
        } catch {
            #expect(error.input == "/a//b")
            #expect(error.description == "invalid key \"/a//b\": empty segment")
        }
    }

    @Test func segmentsParentAndName() throws {
        let key = try Key("/app/db/url")
        #expect(key.segments == ["app", "db", "url"])
        #expect(key.name == "url")
        #expect(key.parent == (try Key("/app/db")))
        #expect(key.parent?.parent == (try Key("/app")))
        #expect(key.parent?.parent?.parent == nil)

        let single = try Key("/top")
        #expect(single.segments == ["top"])
        #expect(single.name == "top")
        #expect(single.parent == nil)
    }

    @Test func isValidSegment() {
        for good in ["a", "A-Z", "x.y", "a.", "_", "@", "0", String(repeating: "z", count: 255)] {
            #expect(Key.isValidSegment(Substring(good)), "\(good)")
        }
        for bad in ["", ".", "..", ".a", "a~", "a/b", "*", "?", "a b", "é", String(repeating: "z", count: 256)] {
            #expect(!Key.isValidSegment(Substring(bad)), "\(bad)")
        }
    }

    @Test func orderIsBytewise() throws {
        let texts = ["/b", "/a/b", "/a-b", "/a", "/B", "/a0", "/a.b", "/a_b"]
        let sorted = try texts.map { try Key($0) }.sorted().map(\.path)
        // '-' (0x2D) < '.' (0x2E) < '/' (0x2F) < '0' < 'B' < '_' < 'a'
        #expect(sorted == ["/B", "/a", "/a-b", "/a.b", "/a/b", "/a0", "/a_b", "/b"])
        #expect(try Key("/a") < Key("/a/b"))
        #expect(!(try Key("/a") < Key("/a")))
    }

    @Test func equalityAndHashingFollowThePath() throws {
        let keys: Set<Key> = [try Key("/a/b"), try Key("/a/b"), try Key("/a/c")]
        #expect(keys.count == 2)
        #expect(try Key("/a/b") == Key("/a" + "/b"))
    }

    /// The one-pass check is a shortcut, never a second rule: over strings built from the bytes that
    /// matter at the edges of the rules (slashes, dots, '~', a space, a non-ASCII letter, ordinary
    /// key bytes) and at the length limits, it never accepts what the full check refuses, and it
    /// accepts every plain key so the shortcut is taken.
    @Test func theOnePassCheckAgreesWithTheFullCheck() {
        var generator = SeededRandom(seed: 11)
        let pieces = ["/", "/", "/", "a", "Z", "0", ".", "..", "~", "-", "_", "@", " ", "é", "x~", "/.", "//"]
        var accepted = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 1...12, using: &generator)
            let text = (0..<count).map { _ in pieces.randomElement(using: &generator)! }.joined()
            if PathSyntax.isPlainKey(text) {
                accepted += 1
                #expect(PathSyntax.keyProblem(text) == nil, "\(text.debugDescription) passed the shortcut only")
            }
        }
        #expect(accepted > 100)
        for text in [key(bytes: 1024), key(bytes: 1025), key(segments: 32), key(segments: 33),
                     key(segments: 2, segmentLength: 255), key(segments: 2, segmentLength: 256), "/a.b/c,d:e=f+g@h"] {
            #expect(PathSyntax.isPlainKey(text) == (PathSyntax.keyProblem(text) == nil), "\(text.prefix(40))")
        }
    }
}
