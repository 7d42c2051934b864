import FileFormats
import Foundation
import Testing

/// pareto-front: the non-dominated lines of several files, sorted, keys kept; ties keep
/// the first line read; a line without the numbers is bad data naming file and line.
struct ParetoFrontToolTests {
    @Test func keepsExactlyTheLinesNothingBeats() throws {
        let h = try ToolHarness()
        // Searched: one at 20 MFLOPs below the min subnet's 88 at 5, one that is the best at 30.
        try """
            {"flops":20,"acc1":86.5,"acc1_pred":90,"id":"s1"}
            {"flops":30,"acc1":89.5,"acc1_pred":91,"id":"s2"}
            """.write(toFile: h.path("searched.jsonl"), atomically: true, encoding: .utf8)
        // Sampled: the min and max subnets and a middle one, one equal to s2 (later: dropped).
        try """
            {"flops":5,"acc1":88,"id":"min"}
            {"flops":50,"acc1":91,"id":"max"}
            {"flops":25,"acc1":88.0,"id":"m1"}
            {"flops":30,"acc1":89.5,"id":"tie"}
            {"flops":40,"acc1":89.4,"id":"m2"}
            """.write(toFile: h.path("sampled.jsonl"), atomically: true, encoding: .utf8)
        let r = try h.run("pareto-front", ["searched.jsonl", "sampled.jsonl"])
        #expect(r.status == 0, "\(r.stderr)")
        let ids = try r.lines.map { try JSONValue.parse($0)["id"]?.stringValue ?? "?" }
        #expect(ids == ["min", "s2", "max"])
        #expect(try JSONValue.parse(r.lines[1])["acc1_pred"]?.doubleValue == 91)
        // Another key to maximise; stdin.
        let byPrediction = try h.run("pareto-front", ["--y", "acc1_pred"], stdin: try String(contentsOfFile: h.path("searched.jsonl"), encoding: .utf8) + "\n")
        #expect(byPrediction.status == 0 && byPrediction.lines.count == 2, "\(byPrediction.stderr)")
        let bad = try h.run("pareto-front", ["searched.jsonl", "-"], stdin: "{\"flops\":3,\"acc1\":1}\n{\"flops\":4}\n")
        #expect(bad.status == 65 && bad.stderr.contains("<stdin>:2") && bad.stdout.isEmpty, "\(bad.stderr)")
        let missing = try h.run("pareto-front", ["nope.jsonl"])
        #expect(missing.status == 1 && missing.stderr.contains("nope.jsonl"), "\(missing.stderr)")
    }
}
