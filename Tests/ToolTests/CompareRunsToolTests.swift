import FileFormats
import Foundation
import Testing

/// compare-runs and plot-pareto --y-error through the binaries, on hand-made run files.
@Suite("compare-runs")
struct CompareRunsToolTests {
    static func write(_ h: ToolHarness, _ name: String, min: Double, mid: Double, max: Double, extra: String = "") throws {
        let text = """
            {"arch_id":"a","role":"min","flops":5,"acc1":\(min),"val_images":10000}
            {"arch_id":"b","role":"mid1","flops":15,"acc1":\(mid),"val_images":10000}
            {"arch_id":"c","role":"max","flops":30,"acc1":\(max),"val_images":10000}
            {"arch_id":"d","flops":20,"acc1":83}
            \(extra)
            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: h.path(name)))
    }

    @Test func summarisesArmsAndWritesTheTable() throws {
        let h = try ToolHarness()
        try Self.write(h, "a0.jsonl", min: 80, mid: 84, max: 90)
        try Self.write(h, "a1.jsonl", min: 82, mid: 86, max: 90)
        try Self.write(h, "k0.jsonl", min: 70, mid: 75, max: 88)
        let r = try h.run("compare-runs", ["alpha=a0.jsonl", "alpha=a1.jsonl", "kl=k0.jsonl", "--markdown", "t.md", "--title", "Demo"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try r.lines.map { try JSONValue.parse($0) }
        #expect(lines.count == 2 * 3 + 2)
        let minAlpha = try #require(lines.first { $0["arm"]?.stringValue == "alpha" && $0["role"]?.stringValue == "min" })
        #expect(minAlpha["acc1_mean"]?.doubleValue == 81 && minAlpha["runs"]?.doubleValue == 2 && minAlpha["flops"]?.doubleValue == 5)
        #expect(abs((minAlpha["acc1_std"]?.doubleValue ?? 0) - 2.0.squareRoot()) < 1e-9)
        let front = try #require(lines.first { $0["arm"]?.stringValue == "kl" && $0["role"]?.stringValue == "front" })
        // kl's front, the unnamed (20, 83) included: (5, 70), (15, 75), (20, 83), (30, 88)
        // over 5-30 MFLOPs: 0.4 * 70 + 0.2 * 75 + 0.4 * 83.
        #expect(abs((front["hv_mean"]?.doubleValue ?? 0) - 76.2) < 1e-9)
        let md = try String(contentsOfFile: h.path("t.md"), encoding: .utf8)
        #expect(md.hasPrefix("### Demo\n") && md.contains("| alpha | 2 | 81.00 ± 1.41 | 85.00 ± 1.41 | 90.00 ± 0.00 |"), "\(md)")
        // The roles plotted per arm with their spread as error bars.
        try Data(r.stdout.utf8).write(to: URL(fileURLWithPath: h.path("summary.jsonl")))
        let plot = try h.run("plot-pareto", ["--history", "summary.jsonl", "--x", "flops", "--y", "acc1_mean", "--y-error", "acc1_std",
                                             "--group", "arm", "--color-by", "arm", "-o", "a.svg"])
        #expect(plot.status == 0, "\(plot.stderr)")
        let svg = try String(contentsOfFile: h.path("a.svg"), encoding: .utf8)
        #expect(svg.components(separatedBy: "class=\"error-bar\"").count - 1 >= 2 && svg.contains(">alpha<") && svg.contains(">kl<"), "\(svg.prefix(400))")
        let without = try h.run("plot-pareto", ["--history", "summary.jsonl", "--x", "flops", "--y", "acc1_mean", "--group", "arm", "--color-by", "arm", "-o", "b.svg"])
        let plain = try String(contentsOfFile: h.path("b.svg"), encoding: .utf8)
        #expect(without.status == 0 && !plain.contains("class=\"error-bar\""))
        let misuse = try h.run("plot-pareto", ["--points", "a0.jsonl", "--y-error", "acc1_std"])
        #expect(misuse.status == 64 && misuse.stderr.contains("--y-error"), "\(misuse.stderr)")
    }

    @Test func badInputIsAClearError() throws {
        let h = try ToolHarness()
        try Self.write(h, "a0.jsonl", min: 80, mid: 84, max: 90)
        try Self.write(h, "short.jsonl", min: 80, mid: 84, max: 90, extra: #"{"role":"mid2","flops":18,"acc1":84}"#)
        try Self.write(h, "bad.jsonl", min: 80, mid: 84, max: 90, extra: #"{"role":"mid2","acc1":84}"#)
        let usage = try h.run("compare-runs", ["a0.jsonl"])
        #expect(usage.status == 64 && usage.stderr.contains("ARM=FILE"), "\(usage.stderr)")
        let missing = try h.run("compare-runs", ["a=nothing.jsonl"])
        #expect(missing.status == 1 && missing.stderr.contains("nothing.jsonl"), "\(missing.stderr)")
        let roles = try h.run("compare-runs", ["a=a0.jsonl", "a=short.jsonl"])
        #expect(roles.status == 65 && roles.stderr.contains("short.jsonl") && roles.stderr.contains("roles"), "\(roles.stderr)")
        let noFlops = try h.run("compare-runs", ["a=bad.jsonl"])
        #expect(noFlops.status == 65 && noFlops.stderr.contains("bad.jsonl:5") && noFlops.stderr.contains("flops"), "\(noFlops.stderr)")
        #expect(roles.stdout.isEmpty && noFlops.stdout.isEmpty)
    }
}
