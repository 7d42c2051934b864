import FileFormats
import Foundation
import Testing

/// rank-correlation through the binary, on sampled archs with made-up accuracies.
@Suite("rank-correlation")
struct RankCorrelationToolTests {
    /// n archs of the tiny space, each with `acc1` from `value(i)`.
    static func archs(_ h: ToolHarness, _ n: Int) throws -> [String] {
        let r = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", String(n), "--seed", "3", "--unique"])
        #expect(r.status == 0, "\(r.stderr)")
        return r.lines
    }

    static func with(_ line: String, _ extra: String) -> String { String(line.dropLast()) + "," + extra + "}" }

    @Test func matchesArchsAcrossFilesInAnyOrder() throws {
        let h = try ToolHarness()
        let a = try Self.archs(h, 12)
        let first = a.enumerated().map { Self.with($0.element, "\"acc1\":\(50 + $0.offset)") }
        // The second file: the same archs in another order, accuracies reversed.
        let second = a.enumerated().map { Self.with($0.element, "\"acc1\":\(90 - $0.offset)") }.reversed()
        try Data((first.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("a.jsonl")))
        try Data((second.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("b.jsonl")))
        let r = try h.run("rank-correlation", ["a.jsonl", "b.jsonl", "--bootstrap", "200"])
        #expect(r.status == 0 && r.lines.count == 1, "\(r.stderr)")
        let j = try JSONValue.parse(r.lines[0])
        #expect(j["n"]?.doubleValue == 12 && j["kendall_tau"]?.doubleValue == -1 && j["spearman_rho"]?.doubleValue == -1)
        #expect(j["top_k"]?.doubleValue == 3 && j["top_k_overlap"]?.doubleValue == 0)
        #expect(j["kendall_tau_ci95"]?.arrayValue?.map(\.doubleValue) == [-1, -1], "\(r.stdout)")
        // Against itself: perfect agreement.
        let same = try h.run("rank-correlation", ["a.jsonl", "a.jsonl", "--top-k", "4"])
        let s = try JSONValue.parse(same.lines.first ?? "{}")
        #expect(s["kendall_tau"]?.doubleValue == 1 && s["top_k_overlap"]?.doubleValue == 1 && s["top_k"]?.doubleValue == 4)
        // One file, two keys.
        let both = a.enumerated().map { Self.with($0.element, "\"acc1\":\($0.offset),\"acc1_pred\":\($0.offset % 2 == 0 ? $0.offset : -$0.offset)") }
        try Data((both.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("p.jsonl")))
        let one = try h.run("rank-correlation", ["--x", "acc1", "--y", "acc1_pred", "p.jsonl", "--bootstrap", "0"])
        let o = try JSONValue.parse(one.lines.first ?? "{}")
        #expect(one.status == 0 && o["n"]?.doubleValue == 12 && o["kendall_tau_ci95"]?.jsonText == "null", "\(one.stderr)")
        #expect((o["kendall_tau"]?.doubleValue ?? 1) < 1 && (o["kendall_tau"]?.doubleValue ?? -1) > -1)
    }

    @Test func mismatchesAreClearErrors() throws {
        let h = try ToolHarness()
        let a = try Self.archs(h, 6)
        let lines = a.map { Self.with($0, "\"acc1\":1") }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("a.jsonl")))
        try Data((lines.dropLast().joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("short.jsonl")))
        try Data(((lines + [lines[0]]).joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("twice.jsonl")))
        try Data((a.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: h.path("noacc.jsonl")))
        let missing = try h.run("rank-correlation", ["a.jsonl", "short.jsonl"])
        #expect(missing.status == 65 && missing.stderr.contains("a.jsonl:6") && missing.stderr.contains("not in short.jsonl"), "\(missing.stderr)")
        let twice = try h.run("rank-correlation", ["a.jsonl", "twice.jsonl"])
        #expect(twice.status == 65 && twice.stderr.contains("twice.jsonl:7") && twice.stderr.contains("again"), "\(twice.stderr)")
        let noKey = try h.run("rank-correlation", ["a.jsonl", "noacc.jsonl"])
        #expect(noKey.status == 65 && noKey.stderr.contains("noacc.jsonl:1") && noKey.stderr.contains("'acc1'"), "\(noKey.stderr)")
        let oneFile = try h.run("rank-correlation", ["a.jsonl"])
        #expect(oneFile.status == 64 && oneFile.stderr.contains("--y"), "\(oneFile.stderr)")
        let bigK = try h.run("rank-correlation", ["a.jsonl", "a.jsonl", "--top-k", "7"])
        #expect(bigK.status == 64 && bigK.stderr.contains("--top-k"), "\(bigK.stderr)")
        #expect(missing.stdout.isEmpty && twice.stdout.isEmpty)
    }
}
