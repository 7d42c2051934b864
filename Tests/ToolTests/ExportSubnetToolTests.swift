import FileFormats
import Foundation
import Testing
import TestSupport

/// export-subnet through the binaries: the official static subnet's names and shapes,
/// exactly the supernet's logits and accuracy after the same calibration, and bad files.
@Suite("export-subnet")
struct ExportSubnetToolTests {
    typealias E = EstimationFixture

    /// The reference's tiny-space subnet (../shared/reference/static_subnet_state_dict.json).
    static func referenceTiny() throws -> (arch: String, names: [(String, [Int])]) {
        let json = try JSONValue.parse(try String(contentsOfFile: Paths.reference + "/static_subnet_state_dict.json", encoding: .utf8))
        let tiny = try #require(json["subnets"]?["tiny"])
        let names = (tiny["state_dict"]?.arrayValue ?? []).map { e -> (String, [Int]) in
            let p = e.arrayValue ?? []
            return (p.first?.stringValue ?? "", (p.last?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) })
        }
        return (try #require(tiny["arch"]).jsonText, names)
    }

    @Test(.requires(.referenceData))
    func exportHasTheOfficialStaticNamesAndTheSupernetsOutputs() throws {
        let f = try E()
        let (arch, names) = try Self.referenceTiny()
        let calib = ["--calib", f.train, "--calib-batches", "2", "--batch-size", "8"]
        let ex = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", arch, "-o", "m.safetensors.lz4"] + calib)
        #expect(ex.status == 0 && ex.stderr.contains("wrote m.safetensors.lz4"), "\(ex.stderr)")
        let file = try TensorFile(contentsOf: f.h.path("m.safetensors.lz4"))
        #expect(file.names.count == names.count)
        for (i, (name, ref)) in zip(file.names, names).enumerated() {
            #expect(name == ref.0 && file[name]?.shape == ref.1, "tensor \(i): \(name) \(file[name]?.shape ?? []), official \(ref.0) \(ref.1)")
        }
        #expect(file.metadata["format"] == "alphanet-static-subnet" && file.metadata["resolution"] == "32")
        #expect(file.metadata["eval_transform"] == "eval" && (file.metadata["calibration"] ?? "").contains("\"batches\":2"), "\(file.metadata)")
        #expect(file.metadata["normalization"]?.contains("123.675") == true && file.metadata["source_checkpoint_sha256"]?.count == 64)
        // infer --model (its transform by default: eval): exactly the supernet's logits
        // after the same calibration under the same transform, in batches of the same size
        // (the batch size changes the kernels' summation order, so the last bits).
        let image = f.h.path("val/val-00000.safetensors.lz4")
        let viaModel = try f.h.run("infer", ["--model", "m.safetensors.lz4", "--images", image, "--batch-size", "8", "-o", "a.safetensors"])
        let viaNet = try f.h.run("infer", ["--checkpoint", f.checkpoint, "--arch", arch, "--images", image, "--transform", "eval", "-o", "b.safetensors"] + calib)
        #expect(viaModel.status == 0 && viaNet.status == 0, "\(viaModel.stderr)\(viaNet.stderr)")
        let a = try #require(try TensorFile(contentsOf: f.h.path("a.safetensors"))["logits"]).floats()
        let b = try #require(try TensorFile(contentsOf: f.h.path("b.safetensors"))["logits"]).floats()
        #expect(a.count == 12 * 10 && a == b, "logits differ: max |a - b| = \(zip(a, b).map { abs($0 - $1) }.max() ?? -1)")
        // estimate-acc on the model: the supernet's figures, the model's transform chosen.
        let net = try f.estimate(arch + "\n", ["--transform", "eval"])
        let mod = try f.h.run("estimate-acc", ["--checkpoint", "m.safetensors.lz4", "--calib", f.train, "--val", f.val,
                                               "--calib-batches", "2", "--batch-size", "8"], stdin: arch + "\n")
        #expect(net.status == 0 && mod.status == 0, "\(net.stderr)\(mod.stderr)")
        #expect(mod.stderr.contains("evaluation transform eval (the exported subnet's eval_transform)"), "\(mod.stderr)")
        let n = try JSONValue.parse(net.lines.first ?? "{}"), m = try JSONValue.parse(mod.lines.first ?? "{}")
        for k in ["acc1", "acc5", "loss", "flops", "params"] { #expect(n[k] == m[k] && n[k] != nil, "\(k): supernet \(n[k]?.jsonText ?? "-"), model \(m[k]?.jsonText ?? "-")") }
        // Another arch on the model: refused, naming the field.
        let other = try f.h.run("estimate-acc", ["--checkpoint", "m.safetensors.lz4", "--calib", f.train, "--val", f.val,
                                                 "--calib-batches", "1", "--batch-size", "8"], stdin: E.minArch + "\n")
        #expect(other.status == 65 && other.stderr.contains("exported subnet") && other.stderr.contains("'resolution' is 24"), "\(other.stderr)")
    }

    /// The file as PyTorch sees it: every tensor readable with its dtype and shape, in order.
    @Test(.requires(.torch), .requires(.referenceData))
    func torchReadsTheStateDict() throws {
        let f = try E()
        let (arch, names) = try Self.referenceTiny()
        let ex = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", arch, "--calib", f.train, "--calib-batches", "1", "--batch-size", "8", "-o", "m.safetensors.lz4"])
        #expect(ex.status == 0, "\(ex.stderr)")
        let script = #"""
            import collections, json, struct, subprocess, sys, torch
            raw = subprocess.run(["lz4", "-dc", sys.argv[1]], check=True, capture_output=True).stdout
            n = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
            kinds = {"F32": torch.float32, "I64": torch.int64}
            state = collections.OrderedDict()
            for name, e in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
                a, b = e["data_offsets"]
                t = torch.frombuffer(bytearray(body[a:b]), dtype=kinds[e["dtype"]]) if b > a else torch.zeros(0, dtype=kinds[e["dtype"]])
                state[name] = t.reshape(e["shape"]).clone()
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
            print(json.dumps([[k, list(v.shape), str(v.dtype)] for k, v in state.items()]))
            """#
        let r = try f.h.runExecutable("/usr/bin/env", ["python3", "-c", script, f.h.path("m.safetensors.lz4")])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try JSONValue.parse(r.lines.last ?? "[]").arrayValue ?? []
        #expect(got.count == names.count)
        for (g, ref) in zip(got, names) {
            let p = g.arrayValue ?? []
            #expect(p.first?.stringValue == ref.0 && (p[1].arrayValue ?? []).compactMap { $0.intValue.map(Int.init) } == ref.1, "\(g.jsonText) vs \(ref)")
            #expect(p.last?.stringValue == (ref.0.hasSuffix("num_batches_tracked") ? "torch.int64" : "torch.float32"))
        }
    }

    /// Fine-tuning: `--init MODEL --arch A` starts a stand-alone run from the exported
    /// weights (step 0 keeps them all, BN statistics included), trains on, and exports again.
    @Test(.requires(.referenceData))
    func fineTuneFromAnExportedSubnet() throws {
        let f = try E()
        let (arch, _) = try Self.referenceTiny()
        let ex = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", arch, "--calib", f.train, "--calib-batches", "2", "--batch-size", "8", "-o", "m.safetensors.lz4"])
        #expect(ex.status == 0, "\(ex.stderr)")
        let common = ["--space", ToolHarness.space("tiny"), "--data", f.train, "--batch-size", "8", "--augment", "none"]
        let start = try f.h.run("train-supernet", common + ["--checkpoint", "ft.safetensors.lz4", "--init", "m.safetensors.lz4", "--arch", arch, "--steps", "0", "--total-steps", "4"])
        #expect(start.status == 0, "\(start.stderr)")
        let again = try f.h.run("export-subnet", ["--checkpoint", "ft.safetensors.lz4", "--arch", arch, "-o", "m0.safetensors.lz4"])
        #expect(again.status == 0, "\(again.stderr)")
        let a = try TensorFile(contentsOf: f.h.path("m.safetensors.lz4")), b = try TensorFile(contentsOf: f.h.path("m0.safetensors.lz4"))
        #expect(a.names == b.names && a.names.allSatisfy { a[$0] == b[$0] }, "step 0 of the fine-tuning run changed the exported weights")
        let trained = try f.h.run("train-supernet", common + ["--checkpoint", "ft.safetensors.lz4", "--steps", "2", "--log-every", "1"])
        #expect(trained.status == 0 && trained.lines.count == 2, "\(trained.stderr)")
        let after = try f.h.run("export-subnet", ["--checkpoint", "ft.safetensors.lz4", "--arch", arch, "-o", "m2.safetensors.lz4"])
        let c = try TensorFile(contentsOf: f.h.path("m2.safetensors.lz4"))
        #expect(after.status == 0 && c["classifier.linear.weight"] != a["classifier.linear.weight"], "two steps changed nothing")
        // Misuse: the model as a training checkpoint, --init without --arch or with another,
        // --init for a run that exists.
        let asCheckpoint = try f.h.run("train-supernet", common + ["--checkpoint", "m.safetensors.lz4", "--steps", "1"])
        #expect(asCheckpoint.status == 64 && asCheckpoint.stderr.contains("--init"), "\(asCheckpoint.stderr)")
        let noArch = try f.h.run("train-supernet", common + ["--checkpoint", "x.safetensors.lz4", "--init", "m.safetensors.lz4", "--steps", "1"])
        #expect(noArch.status == 64 && noArch.stderr.contains("--arch"), "\(noArch.stderr)")
        let otherArch = try f.h.run("train-supernet", common + ["--checkpoint", "x.safetensors.lz4", "--init", "m.safetensors.lz4", "--arch", E.minArch, "--steps", "1"])
        #expect(otherArch.status == 64 && otherArch.stderr.contains("'resolution' is 24"), "\(otherArch.stderr)")
        // The fine-tuning command again (as after an interruption) resumes; another --init cannot.
        let rerun = try f.h.run("train-supernet", common + ["--checkpoint", "ft.safetensors.lz4", "--init", "m.safetensors.lz4", "--arch", arch, "--steps", "3"])
        #expect(rerun.status == 0 && rerun.stderr.contains("resuming ft.safetensors.lz4 at step 2"), "\(rerun.stderr)")
        let exists = try f.h.run("train-supernet", common + ["--checkpoint", "ft.safetensors.lz4", "--init", f.checkpoint, "--arch", arch, "--steps", "4"])
        #expect(exists.status == 64 && exists.stderr.contains("--init only starts a new run"), "\(exists.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.h.path("x.safetensors.lz4")))
        // From the supernet itself: any arch of its space.
        let fromNet = try f.h.run("train-supernet", common + ["--checkpoint", "y.safetensors.lz4", "--init", f.checkpoint, "--arch", E.minArch, "--steps", "1", "--total-steps", "2"])
        #expect(fromNet.status == 0, "\(fromNet.stderr)")
    }

    @Test func badModelsAndArchsAreClearErrors() throws {
        let f = try E()
        let image = f.h.path("val/val-00000.safetensors.lz4")
        // No calibration: a warning, and the model still runs.
        let plain = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", E.minArch, "-o", "m.safetensors"])
        #expect(plain.status == 0 && plain.stderr.contains("warning") && plain.stderr.contains("--calib"), "\(plain.stderr)")
        let run = try f.h.run("infer", ["--model", "m.safetensors", "--images", image])
        #expect(run.status == 0 && run.lines.count == 12, "\(run.stderr)")
        // An arch outside the space: refused naming the field, nothing written.
        var wide = try JSONValue.parse(E.minArch)
        wide["width"] = JSONValue([8, 8, 16, 24, 32, 48, 64, 80, 999])
        let outside = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", wide.jsonText, "-o", "w.safetensors"])
        #expect(outside.status != 0 && outside.stderr.contains("width"), "\(outside.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.h.path("w.safetensors")))
        // Truncated: bad data naming the file.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: f.h.path("m.safetensors")))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: f.h.path("cut.safetensors")))
        let cut = try f.h.run("infer", ["--model", "cut.safetensors", "--images", image])
        #expect(cut.status == 65 && cut.stderr.contains("cut.safetensors"), "\(cut.stderr)")
        // A tensor of the wrong shape: bad data naming the tensor.
        var file = try TensorFile(contentsOf: f.h.path("m.safetensors"))
        file["classifier.linear.bias"] = Tensor([Float](repeating: 0, count: 9), shape: [9])
        try file.write(to: f.h.path("bad.safetensors"), compressed: false)
        let bad = try f.h.run("infer", ["--model", "bad.safetensors", "--images", image])
        #expect(bad.status == 65 && bad.stderr.contains("bad.safetensors") && bad.stderr.contains("classifier.linear.bias"), "\(bad.stderr)")
        // A checkpoint given as a model, and a model without its metadata.
        let notModel = try f.h.run("infer", ["--model", f.checkpoint, "--images", image])
        #expect(notModel.status == 65 && notModel.stderr.contains("not an exported subnet"), "\(notModel.stderr)")
        let both = try f.h.run("infer", ["--model", "m.safetensors", "--checkpoint", f.checkpoint, "--images", image])
        #expect(both.status == 64, "\(both.stderr)")
    }
}
