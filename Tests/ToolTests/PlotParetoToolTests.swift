import FileFormats
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// plot-pareto: valid SVG (parsed as XML), the series it promises, atomic output, exit codes.
@Suite struct PlotParetoToolTests {
    static let lines = (0..<20).map { i in
        "{\"flops\":\(10 + i * 5),\"acc1\":\(50 + Double(i) * 1.5),\"params\":1.0}"
    }.joined(separator: "\n") + "\n"

    /// Parses `svg` as XML and returns the element names it holds, with counts.
    func elements(_ svg: String) throws -> [String: Int] {
        final class Counter: NSObject, XMLParserDelegate {
            var counts: [String: Int] = [:]
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                counts[name, default: 0] += 1
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = Counter()
        parser.delegate = counter
        #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        return counter.counts
    }

    @Test func paretoModeDrawsPointsFrontAndMarks() throws {
        let h = try ToolHarness()
        try Self.lines.write(toFile: h.path("s.jsonl"), atomically: true, encoding: .utf8)
        try (Self.lines.split(separator: "\n").prefix(5).joined(separator: "\n") + "\n").write(toFile: h.path("f.jsonl"), atomically: true, encoding: .utf8)
        let r = try h.run("plot-pareto", ["--points", "s.jsonl", "--front", "f.jsonl", "-o", "p.svg"])
        #expect(r.status == 0 && r.stdout.isEmpty && r.stderr.isEmpty)
        let svg = try String(contentsOfFile: h.path("p.svg"), encoding: .utf8)
        let counts = try elements(svg)
        #expect(counts["svg"] == 1)
        #expect(counts["polyline"] == 1)
        #expect((counts["circle"] ?? 0) >= 20 + 5)
        for text in ["min subnet", "max subnet", "sampled subnets (20)", "searched front (5)", "MFLOPs per image", "top-1 accuracy (%)"] {
            #expect(svg.contains(text), "missing \(text)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir).sorted() == ["f.jsonl", "p.svg", "s.jsonl"])
    }

    @Test func historyModeDrawsOneLinePerModel() throws {
        let h = try ToolHarness()
        var history = ""
        for step in [100, 200, 300] {
            for (id, set) in [("a", "pareto"), ("b", "pareto"), ("c", "sample")] {
                history += "{\"step\":\(step),\"arch_id\":\"\(id)\",\"set\":\"\(set)\",\"acc1\":\(Double(step) / 10)}\n"
            }
        }
        let r = try h.run("plot-pareto", ["--history", "-"], stdin: history)
        #expect(r.status == 0)
        let counts = try elements(r.stdout)
        #expect(counts["polyline"] == 3)
        #expect(r.stdout.contains(">pareto<") && r.stdout.contains(">sample<") && r.stdout.contains("checkpoint step"))
    }

    @Test func badUsageAndBadDataExitCodes() throws {
        let h = try ToolHarness()
        let none = try h.run("plot-pareto", [])
        #expect(none.status == 64 && none.stderr.hasPrefix("plot-pareto: "))
        let both = try h.run("plot-pareto", ["--history", "x", "--points", "y"])
        #expect(both.status == 64)
        let garbage = try h.run("plot-pareto", ["--points", "-"], stdin: "{\"flops\": 1,\n")
        #expect(garbage.status == 65 && garbage.stderr.contains("<stdin>:1"))
        let noNumbers = try h.run("plot-pareto", ["--points", "-"], stdin: "{\"x\":1}\n")
        #expect(noNumbers.status == 65 && noNumbers.stderr.contains("acc1"))
        let missing = try h.run("plot-pareto", ["--points", "nope.jsonl"])
        #expect(missing.status != 0 && missing.stderr.contains("nope.jsonl"))
    }
}
