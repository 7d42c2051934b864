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
