import Foundation
import Testing

/// The repository must make sense to someone who has only the repository. Comments and documents
/// cite sections of `Docs/` by heading (a `Docs/` file name, a space, the section sign, the heading
/// text), never the product spec or the measurement notes kept outside the repository, and never a
/// bare section number. Every citation must name a `Docs/` file that exists and a heading it has, so
/// renaming a heading without its citations fails here.
///
/// Plain file reads over `Sources`, `Tests`, `Docs` and `README.md`; the searched texts are built
/// from pieces so that this file does not match itself.
@Suite struct RepositoryStandsAloneTests {
    static let sectionSign = "\u{A7}"

    /// The package root: this file is `Tests/KVGossipCLITests/RepositoryStandsAloneTests.swift`.
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct TextFile {
        let path: String
        let lines: [String]
    }

    /// Every UTF-8 file under the searched directories, with its path relative to the root.
    static func textFiles() throws -> [TextFile] {
        var files: [TextFile] = []
        let manager = FileManager.default
        for top in ["Sources", "Tests", "Docs"] {
            let dir = root.appendingPathComponent(top)
            guard let walker = manager.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else { continue }
            for case let url as URL in walker {
                guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true,
                    let data = manager.contents(atPath: url.path), let text = String(data: data, encoding: .utf8)
                else { continue }
                let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
                files.append(TextFile(path: relative, lines: text.components(separatedBy: "\n")))
            }
        }
        let readme = root.appendingPathComponent("README.md")
        if let data = manager.contents(atPath: readme.path), let text = String(data: data, encoding: .utf8) {
            files.append(TextFile(path: "README.md", lines: text.components(separatedBy: "\n")))
        }
        return files
    }

    /// A line's text without indentation and comment or quote markers, for joining wrapped lines.
    static func continuation(_ line: String) -> String {
        var text = Substring(line.trimmingCharacters(in: .whitespaces))
        for marker in ["///", "//", "*", ">", "|"] where text.hasPrefix(marker) {
            text = text.dropFirst(marker.count)
            break
        }
        return text.trimmingCharacters(in: .whitespaces)
    }

    @Test func citesNothingOutsideTheRepository() throws {
        let s = Self.sectionSign
        let spec = "SP" + "EC"
        let notes = "refer" + "ence/"
        let rules: [(Regex<AnyRegexOutput>, String)] = [
            (try Regex("\\b\(spec)\\s*\(s)"), "cites the product spec by section; cite a Docs section instead"),
            (try Regex("\(notes)[A-Za-z0-9_.-]+\\.md"), "cites measurement notes outside the repository; write the fact into Docs and cite that"),
            // Group 1, when present and allowed, excuses the match (see below).
            (try Regex("([A-Za-z0-9_./-]+\\.md)\\s*\(s)"), "cites a section of a markdown file; only Docs/<name>.md sections can be cited"),
            (try Regex("(RFC [0-9]{1,5} )?\(s)\\s*[0-9]"), "cites a section by number; cite a Docs section by its heading"),
        ]
        let allowed = try Regex("^(Docs/[A-Za-z0-9_-]+\\.md|RFC [0-9]+ )$")
        let specAtEnd = try Regex("\\b\(spec)\\s*$")
        var problems: [String] = []
        let files = try Self.textFiles()
        #expect(files.count > 100, "found only \(files.count) files under \(Self.root.path)")
        for file in files {
            // Only lines holding one of these can break a rule; the rest skip the regexes.
            for (index, line) in file.lines.enumerated()
            where line.contains(s) || line.contains(notes) || line.contains(spec) {
                var messages: [String] = []
                for (rule, message) in rules where !messages.contains(message) {
                    let offending = line.matches(of: rule).contains { match in
                        guard match.output.count > 1, let excuse = match.output[1].substring else { return true }
                        return excuse.wholeMatch(of: allowed) == nil
                    }
                    if offending { messages.append(message) }
                }
                if line.contains(specAtEnd), index + 1 < file.lines.count,
                    Self.continuation(file.lines[index + 1]).hasPrefix(s) {
                    messages.append("cites the product spec by section across a line break")
                }
                if !messages.isEmpty {
                    problems.append("\(file.path):\(index + 1): \(messages.joined(separator: "; ")): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.count) citations of material outside the repository:\n\(problems.joined(separator: "\n"))")
    }

    @Test func docsCitationsNameExistingHeadings() throws {
        let s = Self.sectionSign
        let citation = try Regex("Docs/([A-Za-z0-9_-]+)\\.md\\s*\(s)\\s*")
        let heading = try Regex("#{1,6}\\s+(.+?)\\s*#*\\s*")
        var headingsByDoc: [String: [String]?] = [:]
        func headings(_ name: String) -> [String]? {
            if let known = headingsByDoc[name] { return known }
            let url = Self.root.appendingPathComponent("Docs").appendingPathComponent(name + ".md")
            var found: [String]?
            if let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) {
                var list: [String] = []
                var inFence = false
                for line in text.components(separatedBy: "\n") {
                    if line.hasPrefix("```") { inFence.toggle() }
                    guard !inFence, let match = line.wholeMatch(of: heading), let title = match.output[1].substring
                    else { continue }
                    list.append(title.lowercased())
                    // `## Sync sessions (TCP, default port 7947)` may be cited as `Sync sessions`.
                    if let paren = title.range(of: " (") { list.append(title[..<paren.lowerBound].lowercased()) }
                }
                found = list
            }
            headingsByDoc[name] = .some(found)
            return found
        }

        var problems: [String] = []
        var checked = 0
        for file in try Self.textFiles() {
            for (index, line) in file.lines.enumerated() where line.contains(s) {
                for match in line.matches(of: citation) {
                    checked += 1
                    let place = "\(file.path):\(index + 1)"
                    let name = String(match.output[1].substring ?? "")
                    guard let list = headings(name) else {
                        problems.append("\(place): Docs/\(name).md does not exist")
                        continue
                    }
                    // The section name runs on; a citation wrapped onto the next line is joined to it.
                    var rest = String(line[match.range.upperBound...])
                    if index + 1 < file.lines.count { rest += " " + Self.continuation(file.lines[index + 1]) }
                    let text = rest.lowercased()
                    let named = list.contains { heading in
                        guard text.hasPrefix(heading) else { return false }
                        let after = text.dropFirst(heading.count).first
                        return after.map { !($0.isLetter || $0.isNumber) } ?? true
                    }
                    if !named {
                        problems.append("\(place): Docs/\(name).md has no heading starting this citation: \(rest.prefix(60))")
                    }
                }
            }
        }
        #expect(checked > 50, "found only \(checked) Docs citations")
        #expect(problems.isEmpty, "\(problems.count) citations of missing Docs sections:\n\(problems.joined(separator: "\n"))")
    }
}
