import FileFormats
import Foundation
import Testing
import TestSupport

/// Scripts/import-torch-checkpoint.py, fed a stand-in for torch.load (JSON with
/// the official structure: 'state_dict', 'module.' prefixes, nested lists),
/// gives a checkpoint that infer and estimate-acc read, with the same logits
/// as the checkpoint it was made from.
@Suite("import-torch-checkpoint", .serialized)
struct InferImportTests {
    @Test(.requires(.python3)) func convertedStateDictGivesTheSameLogits() throws {
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
        #expect(try logits(f, "imported.safetensors.lz4") == logits(f, f.checkpoint))
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

    /// The importer on a real `torch.save` file: our checkpoint's tensors put into torch
    /// tensors under `module.` names, saved the way the official trainer saves
    /// ({epoch, state_dict, optimizer, args}), then converted back. Runs where
    /// `import torch` works; `.ci/run` installs torch and sets ALPHANET_REQUIRE_TORCH=1,
    /// which turns a missing torch into a failure instead of a skip (see `Dependency`).
    @Test(.requires(.torch))
    func realTorchCheckpointRoundTrips() throws {
        let f = try EstimationFixture()
        let save = #"""
        import argparse, json, struct, subprocess, sys, torch
        raw = subprocess.run(["lz4", "-dc", sys.argv[1]], check=True, capture_output=True).stdout
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
        kinds = {"F32": torch.float32, "I64": torch.int64}
        state = {}
        for name, e in header.items():
            if name == "__metadata__" or name.startswith("optimizer."):
                continue
            a, b = e["data_offsets"]
            t = torch.frombuffer(bytearray(body[a:b]), dtype=kinds[e["dtype"]]) if b > a else torch.zeros(0, dtype=kinds[e["dtype"]])
            state["module." + name] = t.reshape(e["shape"]).clone()
        params = [v.clone().requires_grad_() for v in state.values() if v.is_floating_point()]
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
        for p in params: p.grad = torch.ones_like(p)
        opt.step()  # an optimizer state_dict with momentum buffers, saved beside the model as the official trainer does
        torch.save({"epoch": 3, "state_dict": state, "optimizer": opt.state_dict()}, "weights.pth.tar")
        torch.save({"epoch": 3, "state_dict": state, "args": argparse.Namespace(arch="attentive_nas_dynamic_model")}, "full.pth.tar")
        """#
        let made = try f.h.runExecutable("/usr/bin/env", ["python3", "-c", save, f.checkpoint])
        #expect(made.status == 0, "\(made.stderr)")
        let script = ToolHarness.repo + "/Scripts/import-torch-checkpoint.py"
        let plain = try f.h.runExecutable("/usr/bin/env", ["python3", script, "weights.pth.tar", "w.safetensors.lz4", "--space", ToolHarness.space("tiny")])
        #expect(plain.status == 0, "\(plain.stderr)")
        // Pickled Python objects besides tensors: refused (torch.load weights_only) unless trusted.
        let refused = try f.h.runExecutable("/usr/bin/env", ["python3", script, "full.pth.tar", "f.safetensors.lz4", "--space", ToolHarness.space("tiny")])
        #expect(refused.status == 65 && refused.stderr.contains("argparse.Namespace") && refused.stderr.contains("--trust-pickle"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.h.path("f.safetensors.lz4")))
        let trusted = try f.h.runExecutable("/usr/bin/env", ["python3", script, "full.pth.tar", "f.safetensors.lz4", "--space", ToolHarness.space("tiny"), "--trust-pickle"])
        #expect(trusted.status == 0, "\(trusted.stderr)")
        // Every model tensor comes back bit for bit, under its own name.
        let original = try TensorFile(contentsOf: f.checkpoint)
        for out in ["w.safetensors.lz4", "f.safetensors.lz4"] {
            let imported = try TensorFile(contentsOf: f.h.path(out))
            let modelNames = original.names.filter { !$0.hasPrefix("optimizer.") }
            #expect(Set(imported.names) == Set(modelNames))
            for name in modelNames {
                let a = try #require(original[name]), b = try #require(imported[name])
                #expect(a.shape == b.shape && a.dtype == b.dtype, "\(name)")
                if a.dtype == .i64 { #expect(a.ints() == b.ints(), "\(name)") } else { #expect(a.floats() == b.floats(), "\(name)") }
            }
        }
        #expect(try logits(f, "f.safetensors.lz4") == logits(f, f.checkpoint))
    }

    /// infer's logits for `otherArch` on the second validation shard.
    func logits(_ f: EstimationFixture, _ checkpoint: String) throws -> [Float] {
        let r = try f.h.run("infer", ["--checkpoint", checkpoint, "--arch", EstimationFixture.otherArch,
                                      "--images", "val/val-00001.safetensors.lz4", "-o", "l.safetensors"])
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try TensorFile(contentsOf: f.h.path("l.safetensors"))["logits"]).floats()
    }

    func nested(_ values: [String], shape: [Int]) -> String {
        guard let d = shape.first else { return values.first ?? "0" }
        let inner = shape.dropFirst().reduce(1, *)
        return "[" + (0..<d).map { nested(Array(values[($0 * inner)..<(($0 + 1) * inner)]), shape: Array(shape.dropFirst())) }.joined(separator: ",") + "]"
    }
}
