import FileFormats
import Foundation
import Testing

/// Bad values in well-formed files: each is one error line with exit 65 naming the
/// file, never a trap, a hang or a number.
@Suite("Bad values")
struct BadValuesTests {
    typealias F = TrainSupernetFixtures

    /// A shard of `count` images of `height` x 16 with the given labels (int64 when any
    /// does not fit int32) and, unless nil, the micro space's 4-class list.
    static func writeShard(_ path: String, height: Int = 16, labels: [Int64], classes: Bool = true) throws {
        var f = TensorFile(metadata: classes ? ["classes": "[\"c0\",\"c1\",\"c2\",\"c3\"]"] : [:])
        f["images"] = Tensor([UInt8](repeating: 100, count: labels.count * height * 16 * 3), shape: [labels.count, height, 16, 3])
        if labels.allSatisfy({ Int64(Int32.min)...Int64(Int32.max) ~= $0 }) {
            f["labels"] = Tensor(labels.map { Int32($0) }, shape: [labels.count])
        } else {
            f["labels"] = Tensor(labels, shape: [labels.count])
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try f.write(to: path)
    }

    /// A micro-space checkpoint (step 0) and the min arch line.
    static func checkpoint(_ h: ToolHarness) throws -> String {
        try F.make(in: h, trainImages: 16, valImages: 16)
        let r = try h.run("train-supernet", F.common(h) + ["--steps", "0"])
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try h.run("sample-subnets", ["--space", h.path("micro.json"), "--min"]).lines.first)
    }

    @Test(arguments: [(Int64(255), true), (Int64(Int32.max), true), (-1, true), (Int64(1) << 32 + 1, true), (7, false)])
    func labelsOutsideTheClassesAreBadData(label: Int64, withClassList: Bool) throws {
        let h = try ToolHarness()
        let arch = try Self.checkpoint(h)
        try Self.writeShard(h.path("bad/val-00000.safetensors.lz4"), labels: [0, 1, label, 2], classes: withClassList)
        let est = try h.run("estimate-acc", ["--checkpoint", "c.safetensors.lz4", "--calib", h.path("train"), "--val", h.path("bad"),
                                             "--calib-batches", "1", "--batch-size", "8"], stdin: arch + "\n")
        #expect(est.status == 65, "label \(label): \(est.stderr)")
        #expect(est.stderr.contains("bad"), "\(est.stderr)")
        #expect(est.stdout.isEmpty)
        var args = F.common(h, checkpoint: "t.safetensors.lz4")
        args[args.firstIndex(of: "--data")! + 1] = h.path("bad")
        let train = try h.run("train-supernet", args + ["--batch-size", "4", "--steps", "1"])
        #expect(train.status == 65, "label \(label): \(train.stderr)")
        #expect(!F.listing(h).contains("t.safetensors.lz4"))
    }

    @Test func imagesOfHeightZeroAreBadData() throws {
        let h = try ToolHarness()
        let arch = try Self.checkpoint(h)
        try Self.writeShard(h.path("flat/val-00000.safetensors.lz4"), height: 0, labels: [0, 1])
        let est = try h.run("estimate-acc", ["--checkpoint", "c.safetensors.lz4", "--calib", h.path("flat"), "--val", h.path("val"),
                                             "--calib-batches", "1", "--batch-size", "8"], stdin: arch + "\n")
        #expect(est.status == 65, "\(est.stderr)")
        #expect(est.stderr.contains("0x16"), "\(est.stderr)")
    }

    /// Shards that hold no image: an error at once, not a loop over empty epochs.
    @Test func shardsWithoutImagesEndTrainingWithAnError() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 16, valImages: 16)
        try Self.writeShard(h.path("empty/train-00000.safetensors.lz4"), labels: [])
        var args = F.common(h)
        args[args.firstIndex(of: "--data")! + 1] = h.path("empty")
        let r = try h.run("train-supernet", args + ["--steps", "2"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("no images"), "\(r.stderr)")
    }

    /// A diverging run: the step whose loss or weights are not finite is never saved;
    /// the file keeps the last good step, and the error is bad data (65).
    /// lr 1e30: the loss of step 2 is NaN. lr 100: step 4's loss is finite but its
    /// update overflows, and the save at step 4 is refused. Measured on the micro space.
    @Test(arguments: ["1e30", "100"])
    func divergingTrainingKeepsTheLastGoodCheckpoint(lr: String) throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        let r = try h.run("train-supernet", F.common(h) + ["--steps", "12", "--total-steps", "12", "--save-every", "1",
                                                           "--lr", lr, "--lr-schedule", "constant", "--grad-clip", "0"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("became") && r.stderr.split(separator: "\n").filter { $0.contains("error:") }.count == 1, "\(r.stderr)")
        let file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        let step = try #require(file.metadata["step"].flatMap { Int($0) })
        #expect(step >= 1 && step < 12, "saved step \(step)")
        for (name, t) in file.tensors where t.dtype == .f32 {
            #expect(t.floats().allSatisfy { $0.isFinite }, "\(name) holds non-finite values at step \(step)")
        }
        #expect(F.listing(h).filter { $0.hasPrefix("c.") } == ["c.safetensors.lz4"], "temporary files left: \(F.listing(h))")
    }

    /// A checkpoint whose weights hold NaN gives an error, never acc1 100.
    @Test func nonFiniteWeightsAreBadData() throws {
        let h = try ToolHarness()
        let arch = try Self.checkpoint(h)
        var file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        let name = try #require(file.tensors.first { $0.name.hasSuffix("classifier.linear.weight") || $0.name.hasSuffix("linear.weight") }?.name)
        let t = try #require(file[name])
        file[name] = Tensor([Float](repeating: .nan, count: t.count), shape: t.shape)
        try file.write(to: h.path("nan.safetensors.lz4"))
        let r = try h.run("estimate-acc", ["--checkpoint", "nan.safetensors.lz4", "--calib", h.path("train"), "--val", h.path("val"),
                                           "--calib-batches", "1", "--batch-size", "8", "--cache", "cache.jsonl"], stdin: arch + "\n")
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("not finite"), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "an accuracy was printed: \(r.stdout)")
        #expect((try? String(contentsOfFile: h.path("cache.jsonl"), encoding: .utf8)) ?? "" == "", "a non-finite result was cached")
    }

    /// Archs outside any plausible space are bad data naming the field, before FLOPs are
    /// counted or memory allocated; with --space, predict-acc checks the space's lists.
    @Test(arguments: [("resolution", "1000000000"), ("kernel_size", "4"), ("depth", "-1")])
    func implausibleArchsAreBadData(field: String, value: String) throws {
        let h = try ToolHarness()
        let space = ToolHarness.space("tiny")
        let base = try #require(try h.run("sample-subnets", ["--space", space, "--min"]).lines.first)
        var json = try JSONValue.parse(base)
        if field == "resolution" {
            json["resolution"] = .int(Int64(value) ?? 0)
        } else {
            var list = try #require(json[field]?.arrayValue)
            list[2] = .int(Int64(value) ?? 0)
            json[field] = .array(list)
        }
        let line = json.jsonText + "\n"
        let flops = try h.run("count-flops", ["--space", space, "--any-resolution"], stdin: line)
        #expect(flops.status == 65, "\(flops.stderr)")
        #expect(flops.stderr.contains("<stdin>:1: \(field)"), "\(flops.stderr)")
        try Data(line.utf8).write(to: URL(fileURLWithPath: h.path("bad.jsonl")))
        let fit = try h.shell("sample-subnets --space \(space) -n 40 --seed 2 | jq -c '.acc1 = .flops' | fit-predictor --folds 0 -o p.json")
        #expect(fit.status == 0, "\(fit.stderr)")
        let predicted = try h.run("predict-acc", ["--predictor", "p.json", "bad.jsonl"])
        #expect(predicted.status == 65, "\(predicted.stderr)")
        #expect(predicted.stderr.contains("bad.jsonl:1: \(field)"), "\(predicted.stderr)")
        #expect(predicted.stdout.isEmpty)
    }

    @Test func predictAccChecksTheSpaceWhenGivenOne() throws {
        let h = try ToolHarness()
        let fit = try h.shell("sample-subnets --space \(ToolHarness.space("tiny")) -n 40 --seed 2 | jq -c '.acc1 = .flops' | fit-predictor --folds 0 -o p.json")
        #expect(fit.status == 0, "\(fit.stderr)")
        let official = try #require(try h.run("sample-subnets", ["--space", ToolHarness.space("alphanet"), "--min"]).lines.first)
        let loose = try h.run("predict-acc", ["--predictor", "p.json"], stdin: official + "\n")
        #expect(loose.status == 0, "plausible, so answered without --space: \(loose.stderr)")
        let strict = try h.run("predict-acc", ["--predictor", "p.json", "--space", ToolHarness.space("tiny")], stdin: official + "\n")
        #expect(strict.status == 65, "\(strict.stderr)")
        #expect(strict.stderr.contains("<stdin>:1: resolution"), "\(strict.stderr)")
    }
}
