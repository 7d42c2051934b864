import FileFormats
import Foundation
import Testing

/// Scripts/import-torch-checkpoint.py, fed a stand-in for torch.load (JSON with
/// the official structure: 'state_dict', 'module.' prefixes, nested lists),
/// gives a checkpoint that infer and estimate-acc read, with the same logits
/// as the checkpoint it was made from.
@Suite("import-torch-checkpoint", .serialized)
struct InferImportTests {
    @Test func convertedStateDictGivesTheSameLogits() throws {
        let f = try EstimationFixture()
        let original = try TensorFile(contentsOf: f.checkpoint)
        var state = "{\"epoch\": 3, \"state_dict\": {"
        var first = true
        for (name, t) in original.tensors where !name.hasPrefix("optimizer.") {
            if !first { state += "," }
            first = false
            state += "\"module.\(name)\": "
            if t.dtype == .i64 {
                state += t.shape.isEmpty ? "\(t.ints()[0])" : "[" + t.ints().map(String.init).joined(separator: ",") + "]"
            } else {
                state += nested(t.floats().map { "\($0)" }, shape: t.shape)
            }
        }
        state += "}}"
        try Data(state.utf8).write(to: URL(fileURLWithPath: f.h.path("state.json")))
        for out in ["imported.safetensors.lz4", "imported.safetensors"] {
            let r = try f.h.runExecutable("/usr/bin/env", ["python3", ToolHarness.repo + "/Scripts/import-torch-checkpoint.py", "--selftest",
                                                          "state.json", out, "--space", ToolHarness.space("tiny")])
            #expect(r.status == 0, "\(r.stderr)")
            let imported = try TensorFile(contentsOf: f.h.path(out))
            #expect(imported.metadata["format"] == "alphanet-checkpoint" && imported.metadata["version"] == "1")
            #expect(imported.names.allSatisfy { !$0.hasPrefix("module.") })
        }
        func logits(_ checkpoint: String) throws -> [Float] {
            let r = try f.h.run("infer", ["--checkpoint", checkpoint, "--arch", EstimationFixture.otherArch,
                                          "--images", "val/val-00001.safetensors.lz4", "-o", "l.safetensors"])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try TensorFile(contentsOf: f.h.path("l.safetensors"))["logits"]).floats()
        }
        #expect(try logits("imported.safetensors.lz4") == logits(f.checkpoint))
        let est = try f.h.run("estimate-acc", ["--checkpoint", "imported.safetensors", "--calib", f.train, "--val", f.val,
                                               "--calib-batches", "1", "--batch-size", "8", "--val-limit", "8"],
                              stdin: EstimationFixture.minArch + "\n")
        #expect(est.status == 0 && est.lines.count == 1, "\(est.stderr)")
        // Without --space the converted file holds no space: a clear error.
        let noSpace = try f.h.runExecutable("/usr/bin/env", ["python3", ToolHarness.repo + "/Scripts/import-torch-checkpoint.py", "--selftest",
                                                            "state.json", "bare.safetensors"])
        #expect(noSpace.status == 0)
        let bare = try f.h.run("infer", ["--checkpoint", "bare.safetensors", "--arch", EstimationFixture.minArch, "--images", "val/val-00001.safetensors.lz4"])
        #expect(bare.status == 65 && bare.stderr.contains("--space"))
        let withSpace = try f.h.run("infer", ["--checkpoint", "bare.safetensors", "--space", ToolHarness.space("tiny"),
                                              "--arch", EstimationFixture.minArch, "--images", "val/val-00001.safetensors.lz4"])
        #expect(withSpace.status == 0, "\(withSpace.stderr)")
    }

    func nested(_ values: [String], shape: [Int]) -> String {
        guard let d = shape.first else { return values.first ?? "0" }
        let inner = shape.dropFirst().reduce(1, *)
        return "[" + (0..<d).map { nested(Array(values[($0 * inner)..<(($0 + 1) * inner)]), shape: Array(shape.dropFirst())) }.joined(separator: ",") + "]"
    }
}
