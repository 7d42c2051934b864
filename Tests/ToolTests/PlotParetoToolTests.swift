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
        for text in ["min subnet", "max subnet", "sampled subnets (20)", "front (5)", "MFLOPs per image", "top-1 accuracy (%)"] {
            #expect(svg.contains(text), "missing \(text)")
        }
        // Without val_images there is no interval to draw.
        #expect(!svg.contains("error-bar") && !svg.contains("95%"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir).sorted() == ["f.jsonl", "p.svg", "s.jsonl"])
    }

    /// Data that is never negative gets no negative axis: a min subnet of 0.7 MFLOPs
    /// (the demo's) starts the x axis at 0, not at -10.
    @Test func axesOfNonNegativeDataStartAtZero() throws {
        let h = try ToolHarness()
        let pts = [(0.7, 79.0), (12.0, 81.0), (49.9, 90.0)].map { "{\"flops\":\($0.0),\"acc1\":\($0.1)}" }
        try (pts.joined(separator: "\n") + "\n").write(toFile: h.path("s.jsonl"), atomically: true, encoding: .utf8)
        let r = try h.run("plot-pareto", ["--points", "s.jsonl", "-o", "p.svg"])
        #expect(r.status == 0, "\(r.stderr)")
        let svg = try String(contentsOfFile: h.path("p.svg"), encoding: .utf8)
        #expect(svg.contains(">0</text>") && !svg.contains(">-"), "an axis label below zero")
    }

    /// Accuracies measured on N images get error bars of their 95% interval: on the
    /// front and the min/max marks (not the cloud of sampled dots); --searched draws rings.
    @Test func measuredAccuraciesGetTheirIntervals() throws {
        let h = try ToolHarness()
        let sampled = (0..<10).map { i in "{\"flops\":\(10 + i * 5),\"acc1\":\(80 + Double(i)),\"val_images\":400}" }
        try (sampled.joined(separator: "\n") + "\n").write(toFile: h.path("s.jsonl"), atomically: true, encoding: .utf8)
        // acc1 90 on 400 images: 1.96 * sqrt(0.9 * 0.1 / 400) = 2.94 points either side.
        try "{\"flops\":30,\"acc1\":90,\"val_images\":400}\n{\"flops\":60,\"acc1\":91,\"val_images\":10000}\n".write(toFile: h.path("f.jsonl"), atomically: true, encoding: .utf8)
        try "{\"flops\":20,\"acc1\":70}\n{\"flops\":40,\"acc1\":72}\n{\"flops\":50,\"acc1\":75}\n".write(toFile: h.path("r.jsonl"), atomically: true, encoding: .utf8)
        let r = try h.run("plot-pareto", ["--points", "s.jsonl", "--front", "f.jsonl", "--searched", "r.jsonl", "-o", "p.svg"])
        #expect(r.status == 0, "\(r.stderr)")
        let svg = try String(contentsOfFile: h.path("p.svg"), encoding: .utf8)
        _ = try elements(svg)
        // Two front points and the two marks.
        #expect(svg.components(separatedBy: "class=\"error-bar\"").count - 1 == 4)
        #expect(svg.contains("front (2, bars: 95% intervals)") && svg.contains("searched archs, measured (3)"))
        #expect(svg.components(separatedBy: "fill=\"none\" stroke=\"\(Palette1.orange)\"").count - 1 == 3 + 1, "3 rings and the legend's")
        // The bars scale with the interval: 90% on 400 images against 91% on 10,000 is
        // sqrt(0.09 / 400) / sqrt(0.0819 / 10000) = 5.24 times as tall.
        let heights = svg.components(separatedBy: "class=\"error-bar\" d=\"M").dropFirst().map { part -> Double in
            let coords = part.prefix { $0 != " " }.split(separator: ",")
            let lineTo = part.split(separator: " ")[1].dropFirst().split(separator: ",")
            return abs((Double(lineTo[1]) ?? 0) - (Double(coords[1]) ?? 0))
        }
        #expect(heights.count == 4 && heights[0] / heights[1] > 5.1 && heights[0] / heights[1] < 5.4, "\(heights)")
    }
    enum Palette1 { static let orange = "#ff7f0e" }

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
        // --scatter: the same 9 points as dots (and a dot per legend row), no lines.
        let dots = try h.run("plot-pareto", ["--history", "-", "--scatter"], stdin: history)
        #expect(dots.status == 0)
        let dotCounts = try elements(dots.stdout)
        #expect(dotCounts["polyline"] == nil && dotCounts["circle"] == 9 + 2, "\(dotCounts)")
        #expect(dots.stdout.contains(">pareto<") && dots.stdout.contains(">sample<"))
        let stray = try h.run("plot-pareto", ["--points", "-", "--scatter"], stdin: history)
        #expect(stray.status == 64 && stray.stderr.contains("--scatter"), "\(stray.stderr)")
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
