import FileFormats
import Foundation
import Testing

/// measure-latency through the binary: the shape of its output, never its speed.
@Suite("measure-latency")
struct MeasureLatencyToolTests {
    @Test func timesEachArchAtEachBatchSize() throws {
        let h = try ToolHarness()
        let archs = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "--min", "--max", "-n", "1", "--seed", "4"])
        let input = archs.lines.map { String($0.dropLast()) + ",\"tag\":\"kept\"}" }.joined(separator: "\n") + "\n"
        let r = try h.run("measure-latency", ["--space", ToolHarness.space("tiny"), "--batch", "1,4", "--warmup", "1", "--repeat", "3", "--threads", "1"], stdin: input)
        #expect(r.status == 0 && r.lines.count == 3, "\(r.stderr)")
        for line in r.lines {
            let j = try JSONValue.parse(line)
            let ms = try #require(j["latency_ms"]?.doubleValue)
            #expect(ms > 0 && j["tag"]?.stringValue == "kept" && j["latency_threads"]?.doubleValue == 1 && (j["flops"]?.doubleValue ?? 0) > 0)
            for b in ["1", "4"] {
                let t = try #require(j["latency"]?[b], "\(line)")
                let (p10, med, p90) = (t["p10_ms"]?.doubleValue ?? -1, t["median_ms"]?.doubleValue ?? -1, t["p90_ms"]?.doubleValue ?? -1)
                #expect(p10 > 0 && p10 <= med && med <= p90 && t["runs"]?.doubleValue == 3, "\(line)")
            }
            #expect(j["latency"]?["1"]?["median_ms"]?.doubleValue == ms)
        }
        #expect(r.stderr.contains("3 archs timed"))
    }

    /// --table-out times every segment of the input archs; --table predicts from it: the
    /// archs it was built on hit every segment, others get fitted predictions.
    @Test func latencyTableIsBuiltAndPredictsEveryArch() throws {
        let h = try ToolHarness()
        let s = ToolHarness.space("tiny")
        let build = try h.run("sample-subnets", ["--space", s, "--min", "--max", "-n", "4", "--seed", "2"])
        let measured = try h.run("measure-latency", ["--space", s, "--batch", "2", "--warmup", "1", "--repeat", "2", "--threads", "1", "--table-out", "t.json"],
                                 stdin: build.stdout)
        #expect(measured.status == 0 && measured.lines.count == 6 && measured.stderr.contains("wrote t.json"), "\(measured.stderr)")
        let table = try JSONValue.parse(try String(contentsOfFile: h.path("t.json"), encoding: .utf8))
        #expect(table["format"]?.stringValue == "alphanet-latency-table" && table["batch"]?.intValue == 2 && (table["entries"]?.objectValue?.count ?? 0) > 6)
        let again = try h.run("measure-latency", ["--space", s, "--table", "t.json"], stdin: build.stdout)
        #expect(again.status == 0 && again.lines.count == 6, "\(again.stderr)")
        for line in again.lines {
            let j = try JSONValue.parse(line)
            let hits = (j["latency_table_hits"]?.stringValue ?? "").split(separator: "/")
            #expect(hits.count == 2 && hits[0] == hits[1] && (j["latency_ms_pred"]?.doubleValue ?? 0) > 0 && j["latency_ms"] == nil, "\(line)")
        }
        let fresh = try h.run("sample-subnets", ["--space", s, "-n", "5", "--seed", "9"])
        let predicted = try h.run("measure-latency", ["--space", s, "--table", "t.json"], stdin: fresh.stdout)
        #expect(predicted.status == 0 && predicted.lines.count == 5)
        // Unseen archs: some segments come from the fits, and every prediction is more than
        // the overhead alone.
        let overhead = table["overhead_ms"]?.doubleValue ?? .infinity
        let fresh5 = try predicted.lines.map { try JSONValue.parse($0) }
        #expect(fresh5.allSatisfy { ($0["latency_ms_pred"]?.doubleValue ?? 0) > overhead })
        #expect(fresh5.contains { l in
            let h = (l["latency_table_hits"]?.stringValue ?? "").split(separator: "/")
            return h.count == 2 && h[0] != h[1]
        })
        try Data("{\"format\":\"x\"}".utf8).write(to: URL(fileURLWithPath: h.path("bad.json")))
        let none = try h.run("measure-latency", ["--space", s, "--table-out", "empty.json"], stdin: "")
        #expect(none.status == 65 && none.stderr.contains("no arch lines") && !FileManager.default.fileExists(atPath: h.path("empty.json")), "\(none.stderr)")
        let bad = try h.run("measure-latency", ["--space", s, "--table", "bad.json"], stdin: fresh.stdout)
        #expect(bad.status == 65 && bad.stderr.contains("bad.json") && bad.stderr.contains("latency table"), "\(bad.stderr)")
    }

    @Test func badInputIsAClearError() throws {
        let f = try EstimationFixture()
        let arch = EstimationFixture.minArch
        let zero = try f.h.run("measure-latency", ["--space", ToolHarness.space("tiny"), "--batch", "1,0"], stdin: arch + "\n")
        #expect(zero.status == 64 && zero.stderr.contains("--batch"), "\(zero.stderr)")
        let none = try f.h.run("measure-latency", [], stdin: arch + "\n")
        #expect(none.status == 64 && none.stderr.contains("--space"), "\(none.stderr)")
        let notModel = try f.h.run("measure-latency", ["--model", f.checkpoint], stdin: arch + "\n")
        #expect(notModel.status == 65 && notModel.stderr.contains("not an exported subnet"), "\(notModel.stderr)")
        let ex = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", arch, "-o", "m.safetensors"])
        #expect(ex.status == 0, "\(ex.stderr)")
        let other = try f.h.run("measure-latency", ["--model", "m.safetensors", "--repeat", "1", "--warmup", "0"],
                                stdin: arch + "\n" + EstimationFixture.otherArch + "\n")
        #expect(other.status == 65 && other.stderr.contains("<stdin>:2") && other.stderr.contains("exported subnet") && other.lines.count == 1, "\(other.stderr)")
        let badLine = try f.h.run("measure-latency", ["--space", ToolHarness.space("tiny")], stdin: "{\"resolution\":24}\n")
        #expect(badLine.status == 65 && badLine.stderr.contains("<stdin>:1"), "\(badLine.stderr)")
    }
}
