import FileFormats
import Foundation
import Testing

@Suite("infer tool", .serialized)
struct InferToolTests {
    /// estimate-acc's accuracy equals the accuracy of infer's logits on the
    /// same images with the same recalibration (end to end, built binaries).
    @Test func logitsReproduceEstimatedAccuracy() throws {
        let f = try EstimationFixture()
        let valShard = f.h.path("val/val-00000.safetensors.lz4")
        let est = try f.h.run("estimate-acc", ["--checkpoint", f.checkpoint, "--calib", f.train, "--val", valShard,
                                               "--calib-batches", "2", "--batch-size", "8"], stdin: EstimationFixture.otherArch + "\n")
        #expect(est.status == 0, "\(est.stderr)")
        let line = try EstimationFixture.object(try #require(est.lines.first))
        let r = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", EstimationFixture.otherArch, "--images", valShard,
                                      "--calib", f.train, "--calib-batches", "2", "--batch-size", "8", "--transform", "eval",
                                      "-o", "logits.safetensors.lz4"])
        #expect(r.status == 0, "\(r.stderr)")
        let logits = try #require(try TensorFile(contentsOf: f.h.path("logits.safetensors.lz4"))["logits"])
        #expect(logits.shape == [12, 10])
        let labels = try #require(try TensorFile(contentsOf: valShard)["labels"]).ints()
        try InferToolTests.expectSameAccuracy(line, logits: logits.floats(), labels: labels)
    }

    /// The AVX-512 kernels (the default on a CPU that has them) and the AVX2 ones
    /// (`ALPHANET_VECTOR_ISA=avx2`) give infer byte-identical logits: the same sums in the
    /// same order. Skipped on a CPU without AVX-512, where both runs would take one path.
    @Test(.enabled(if: InferToolTests.cpuHasAVX512, "the CPU has no AVX-512"))
    func vectorISAsGiveTheSameLogits() throws {
        let f = try EstimationFixture()
        let valShard = f.h.path("val/val-00000.safetensors.lz4")
        var outputs: [Data] = []
        for (isa, file) in [("avx512", "wide.safetensors.lz4"), ("avx2", "narrow.safetensors.lz4")] {
            let r = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", EstimationFixture.otherArch, "--images", valShard,
                                          "--calib", f.train, "--calib-batches", "2", "--batch-size", "8", "--transform", "eval",
                                          "-o", file], environment: ["ALPHANET_VECTOR_ISA": isa])
            #expect(r.status == 0, "\(isa): \(r.stderr)")
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: f.h.path(file))))
        }
        #expect(outputs[0] == outputs[1], "logits differ between the AVX-512 and the AVX2 kernels")
    }

    static let cpuHasAVX512: Bool = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        return flags.split(separator: " ").contains("avx512f")
    }()

    /// `estimate-acc --transform resize` evaluates whole images: on 24 px shards and a
    /// 24 px subnet that is the identity, so its accuracy equals that of infer's logits on
    /// the stored images (recalibrated on the same whole images); `eval` (the centre crop)
    /// gives another loss, and each line says which transform it used. `auto` follows the
    /// checkpoint's training augmentation: eval after `--augment train`, resize after `none`.
    @Test func resizeTransformEvaluatesWholeImages() throws {
        let f = try EstimationFixture()
        try EstimationFixture.writeShard(f.h.path("val24.safetensors.lz4"), count: 12, seed: 5, size: 24)
        try EstimationFixture.writeShard(f.h.path("cal24.safetensors.lz4"), count: 16, seed: 6, size: 24)
        func estimate(_ checkpoint: String, _ transform: [String]) throws -> (line: JSONValue, stderr: String) {
            let r = try f.h.run("estimate-acc", ["--checkpoint", checkpoint, "--calib", "cal24.safetensors.lz4", "--val", "val24.safetensors.lz4",
                                                 "--calib-batches", "2", "--batch-size", "8"] + transform, stdin: EstimationFixture.minArch + "\n")
            #expect(r.status == 0, "\(r.stderr)")
            return (try EstimationFixture.object(try #require(r.lines.first)), r.stderr)
        }
        let resized = try estimate(f.checkpoint, ["--transform", "resize"])
        #expect(resized.line["eval_transform"]?.stringValue == "resize")
        let r = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", EstimationFixture.minArch, "--images", "val24.safetensors.lz4",
                                      "--calib", "cal24.safetensors.lz4", "--calib-batches", "2", "--batch-size", "8",
                                      "-o", "logits.safetensors"])
        #expect(r.status == 0, "\(r.stderr)")
        let logits = try #require(try TensorFile(contentsOf: f.h.path("logits.safetensors"))["logits"]).floats()
        let labels = try #require(try TensorFile(contentsOf: f.h.path("val24.safetensors.lz4"))["labels"]).ints()
        try InferToolTests.expectSameAccuracy(resized.line, logits: logits, labels: labels)

        let cropped = try estimate(f.checkpoint, ["--transform", "eval"])
        #expect(cropped.line["eval_transform"]?.stringValue == "eval")
        #expect(cropped.line["loss"]?.doubleValue != resized.line["loss"]?.doubleValue)
        // auto: the fixture's checkpoint was made with the default --augment train.
        let auto = try estimate(f.checkpoint, [])
        #expect(auto.line["eval_transform"]?.stringValue == "eval" && auto.line["loss"] == cropped.line["loss"])
        #expect(auto.stderr.contains("evaluation transform eval (trained with --augment train)"), "\(auto.stderr)")
        let made = try f.h.run("train-supernet", ["--space", ToolHarness.space("tiny"), "--data", f.train, "--checkpoint", "none.safetensors.lz4",
                                                  "--steps", "0", "--augment", "none"])
        #expect(made.status == 0, "\(made.stderr)")
        let autoNone = try estimate("none.safetensors.lz4", [])
        #expect(autoNone.line["eval_transform"]?.stringValue == "resize" && autoNone.stderr.contains("trained with --augment none"))
    }

    /// acc1, acc5 and loss of an estimate-acc line equal those of `logits` ([n, 10]).
    static func expectSameAccuracy(_ line: JSONValue, logits v: [Float], labels: [Int]) throws {
        var top1 = 0, top5 = 0
        var loss = 0.0
        for (i, y) in labels.enumerated() {
            let row = Array(v[(i * 10)..<((i + 1) * 10)])
            let above = row.filter { $0 > row[y] }.count
            if above == 0 { top1 += 1 }
            if above < 5 { top5 += 1 }
            let m = row.max() ?? 0
            loss += log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }) - Double(row[y] - m)
        }
        let n = Double(labels.count)
        #expect(line["acc1"]?.doubleValue == (100 * Double(top1) / n).roundedTo(4))
        #expect(line["acc5"]?.doubleValue == (100 * Double(top5) / n).roundedTo(4))
        #expect(abs((line["loss"]?.doubleValue ?? 0) - loss / n) < 1e-4)
    }

    @Test func printsTopFivePerImageWithNamesAndLabels() throws {
        let f = try EstimationFixture()
        try Data((EstimationFixture.minArch + "\n").utf8).write(to: URL(fileURLWithPath: f.h.path("arch.jsonl")))
        let r = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", "@arch.jsonl", "--images", "val/val-00001.safetensors.lz4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.count == 8)
        let first = try EstimationFixture.object(r.lines[0])
        #expect(first["index"]?.intValue == 0)
        let top = try #require(first["top5"]?.arrayValue)
        #expect(top.count == 5)
        #expect(top.allSatisfy { $0["name"]?.stringValue.map(EstimationFixture.classes.contains) == true })
        let probs = top.compactMap { $0["prob"]?.doubleValue }
        #expect(probs == probs.sorted(by: >))
        #expect(first["label"]?.intValue != nil && first["label_name"]?.stringValue != nil)
        // --bn batch runs too and leaves the output format alone.
        let b = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", "@arch.jsonl", "--images", "val/val-00001.safetensors.lz4", "--bn", "batch"])
        #expect(b.status == 0 && b.lines.count == 8, "\(b.stderr)")
    }

    /// A float32 tensor is used as given, resized to the arch's resolution.
    @Test func floatImagesAreUsedAsGiven() throws {
        let f = try EstimationFixture()
        var file = TensorFile()
        let values: [Float] = (0..<(3 * 20 * 20 * 3)).map { (i: Int) -> Float in Float(i % 17) / 17 - 0.5 }
        file["images"] = Tensor(values, shape: [3, 20, 20, 3])
        try file.write(to: f.h.path("x.safetensors"), compressed: false)
        let r = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", EstimationFixture.minArch, "--images", "x.safetensors", "-o", "y.safetensors"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try TensorFile(contentsOf: f.h.path("y.safetensors"))
        #expect(out["logits"]?.shape == [3, 10])
        #expect(out["logits"]?.floats().allSatisfy(\.isFinite) == true)
        #expect(!FileManager.default.fileExists(atPath: f.h.path("y.safetensors.tmp")))
    }

    @Test func errorsNameTheFile() throws {
        let f = try EstimationFixture()
        var file = TensorFile()
        file["pixels"] = Tensor([Float](repeating: 0, count: 12), shape: [1, 2, 2, 3])
        try file.write(to: f.h.path("nopix.safetensors"), compressed: false)
        let a = EstimationFixture.minArch
        let noImages = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", a, "--images", "nopix.safetensors"])
        #expect(noImages.status == 65 && noImages.stderr.contains("nopix.safetensors") && noImages.stderr.contains("images"))
        let missing = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", a, "--images", "gone.safetensors"])
        #expect(missing.status == 1 && missing.stderr.contains("gone.safetensors"))
        let badArch = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", #"{"resolution":24}"#, "--images", "nopix.safetensors"])
        #expect(badArch.status == 65 && badArch.stderr.contains("width"))
        let badMode = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", a, "--images", "nopix.safetensors", "--bn", "other"])
        #expect(badMode.status == 64)
        for r in [noImages, missing, badArch, badMode] { #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)") }
    }
}
