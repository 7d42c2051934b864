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
                                      "--calib", f.train, "--calib-batches", "2", "--calib-batch-size", "8", "--transform", "eval",
                                      "-o", "logits.safetensors.lz4"])
        #expect(r.status == 0, "\(r.stderr)")
        let logits = try #require(try TensorFile(contentsOf: f.h.path("logits.safetensors.lz4"))["logits"])
        #expect(logits.shape == [12, 10])
        let shard = try TensorFile(contentsOf: valShard)
        let labels = try #require(shard["labels"]).ints()
        let v = logits.floats()
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
        #expect(line["acc1"]?.doubleValue == (100 * Double(top1) / 12).roundedTo(4))
        #expect(line["acc5"]?.doubleValue == (100 * Double(top5) / 12).roundedTo(4))
        #expect(abs((line["loss"]?.doubleValue ?? 0) - loss / 12) < 1e-4)
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
