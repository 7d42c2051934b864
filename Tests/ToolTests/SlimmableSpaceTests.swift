import FileFormats
import Foundation
import Testing
import TestSupport

/// The slimmable space (pipelines/spaces/slimmable.json, AlphaNet section 4.1: widths
/// vary, depth, kernel, expansion and resolution are fixed) through every tool: sampling
/// and FLOPs, training (sandwich and attentive), estimation, predictor fit and use, search,
/// inference and the plot. Every arch any tool writes keeps the fixed choices.
struct SlimmableSpaceTests {
    static let space = ToolHarness.space("slimmable")

    static func fixedChoicesKept(_ line: String) throws -> Bool {
        let a = try JSONValue.parse(line)
        return a["resolution"]?.intValue == 32
            && a["depth"] == .array([1, 2, 2, 2, 2, 2, 1].map { .int($0) })
            && a["kernel_size"] == .array(Array(repeating: .int(3), count: 7))
            && a["expand_ratio"] == .array([1, 6, 6, 6, 6, 6, 6].map { .int($0) })
    }

    @Test func slimmableSpaceWorksThroughEveryTool() throws {
        let h = try ToolHarness()
        try FileManager.default.createDirectory(atPath: h.path("train"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: h.path("val"), withIntermediateDirectories: true)
        try EstimationFixture.writeShard(h.path("train/train-00000.safetensors.lz4"), count: 64, seed: 1)
        try EstimationFixture.writeShard(h.path("val/val-00000.safetensors.lz4"), count: 24, seed: 2)
        let s = Self.space
        // Sampling: the min, the max and 14 distinct width choices (16 lines); FLOPs recounted agree.
        let sampled = try h.shell("sample-subnets --space \(s) --min --max -n 14 --seed 4 --unique > archs.jsonl && count-flops --space \(s) archs.jsonl")
        #expect(sampled.status == 0, "\(sampled.stderr)")
        #expect(sampled.lines.count == 16 && Set(sampled.lines).count == 16)
        #expect(try sampled.lines.allSatisfy(Self.fixedChoicesKept))
        let widths = try sampled.lines.map { try JSONValue.parse($0)["width"]?.jsonText ?? "" }
        #expect(widths.first == "[8,8,12,16,24,32,40,48,160]" && widths[1] == "[16,16,24,32,48,64,80,96,320]", "\(widths.prefix(2))")
        // Training: the sandwich, then attentive sampling on the same checkpoint's space.
        let common = ["--space", s, "--data", "train", "--batch-size", "8", "--augment", "none", "--log-every", "1"]
        let train = try h.run("train-supernet", common + ["--checkpoint", "c.safetensors.lz4", "--steps", "3", "--total-steps", "6"])
        #expect(train.status == 0 && train.lines.count == 3, "\(train.stderr)")
        let attentive = try h.run("train-supernet", common + ["--checkpoint", "a.safetensors.lz4", "--steps", "2", "--sampler", "attentive-bestup"])
        #expect(attentive.status == 0 && attentive.lines.count == 2, "\(attentive.stderr)")
        // Estimation of every sampled arch, a predictor fitted on them, used, and searched with.
        let estimated = try h.shell("estimate-acc --checkpoint c.safetensors.lz4 --calib train --val val --calib-batches 1 --batch-size 8 archs.jsonl > acc.jsonl && cat acc.jsonl")
        #expect(estimated.status == 0 && estimated.lines.count == 16, "\(estimated.stderr)")
        #expect(try estimated.lines.allSatisfy { try (0...100).contains(JSONValue.parse($0)["acc1"]?.doubleValue ?? -1) })
        let fitted = try h.shell("fit-predictor --folds 3 -o p.json < acc.jsonl && predict-acc --predictor p.json --space \(s) archs.jsonl")
        #expect(fitted.status == 0 && fitted.lines.count == 16, "\(fitted.stderr)")
        #expect(try fitted.lines.allSatisfy { try JSONValue.parse($0)["acc1_pred"]?.doubleValue != nil })
        let searched = try h.shell("evo-search --space \(s) --predictor p.json --budget 40 --population 10 --seed 1 > front.jsonl && cat front.jsonl")
        #expect(searched.status == 0 && !searched.lines.isEmpty, "\(searched.stderr)")
        #expect(try searched.lines.allSatisfy(Self.fixedChoicesKept))
        let onSupernet = try h.shell("evo-search --space \(s) --evaluator 'estimate-acc --checkpoint c.safetensors.lz4 --calib train --val val --calib-batches 1 --batch-size 8' --budget 4 --population 4 --seed 1")
        #expect(onSupernet.status == 0 && !onSupernet.lines.isEmpty, "\(onSupernet.stderr)")
        // Inference of the max subnet on the validation shard, and the plot.
        let max = sampled.lines[1]
        let inferred = try h.run("infer", ["--checkpoint", "c.safetensors.lz4", "--arch", max, "--images", "val/val-00000.safetensors.lz4",
                                           "--calib", "train", "--calib-batches", "1", "--batch-size", "8"])
        #expect(inferred.status == 0 && inferred.lines.count == 24, "\(inferred.stderr)")
        let plot = try h.run("plot-pareto", ["--points", "acc.jsonl", "--front", "front.jsonl", "-o", "p.svg"])
        #expect(plot.status == 0, "\(plot.stderr)")
        #expect(try String(contentsOfFile: h.path("p.svg"), encoding: .utf8).contains("<svg"))
        // An arch outside the space (another depth) is refused by name.
        let outside = sampled.lines[0].replacingOccurrences(of: #""depth":[1,2,2,2,2,2,1]"#, with: #""depth":[1,3,2,2,2,2,1]"#)
        let refused = try h.run("count-flops", ["--space", s], stdin: outside + "\n")
        #expect(refused.status == 65 && refused.stderr.contains("depth"), "\(refused.stderr)")
    }
}
