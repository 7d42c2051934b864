import FileFormats
import Foundation
import Testing
import TestSupport

/// export-subnet --format onnx through the binaries, the models run by onnxruntime: the
/// logits equal infer's on the same subnet (after the same calibration) to 1e-4 of the
/// logits' standard deviation, with and without --fold-bn, on the official space (A0, A6)
/// and the tiny space (two subnets, a plain and a K-shot supernet).
@Suite("export-subnet --format onnx")
struct ExportONNXToolTests {
    typealias E = EstimationFixture

    /// AlphaNet-A0 (../shared/reference/static_subnet_state_dict.json) and A6 (the official
    /// eval_alphanet_models.yml), at their own resolutions.
    static let a0 = #"{"resolution":192,"width":[16,16,24,32,64,112,192,216,1792],"depth":[1,3,3,3,3,3,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,4,4,4,4,6,6]}"#
    static let a6 = #"{"resolution":288,"width":[16,16,24,32,64,112,216,224,1984],"depth":[1,3,3,4,4,6,1],"kernel_size":[3,3,3,3,3,5,3],"expand_ratio":[1,4,6,5,4,6,6]}"#
    /// The reference's tiny-space subnet (SE in stages 3-5 and 7, kernels 3 and 5).
    static let tiny = #"{"resolution":32,"width":[16,16,24,32,48,64,80,96,320],"depth":[1,2,2,2,2,2,1],"kernel_size":[3,3,5,3,5,3,3],"expand_ratio":[1,4,6,4,6,4,6]}"#

    /// Checks one exported ONNX model against infer's logits: argv = the model, the images
    /// (raw little-endian float32, NHWC), their shape, infer's logits (raw float32), the
    /// expected BatchNormalization count (-1: some, 0: none), the arch JSON. Also runs
    /// onnx's full checker and checks the opset, the metadata and the input's shape.
    static let check = #"""
    import json, sys
    import numpy as np, onnx, onnxruntime as ort
    path, xs, shape, ys, bn, arch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6])
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17], m.opset_import
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["arch"]) == {k: arch[k] for k in ("resolution", "width", "depth", "kernel_size", "expand_ratio")}, meta["arch"]
    assert meta["resolution"] == str(arch["resolution"]) and "mean" in json.loads(meta["normalization"]), meta
    assert "NCHW" in meta["input"] and meta["eval_transform"] in ("eval", "resize"), meta
    ops = [n.op_type for n in m.graph.node]
    assert (ops.count("BatchNormalization") > 0) if bn < 0 else (ops.count("BatchNormalization") == bn), ops.count("BatchNormalization")
    x = np.fromfile(xs, dtype="<f4").reshape(shape).transpose(0, 3, 1, 2).copy()
    ref = np.fromfile(ys, dtype="<f4").reshape(shape[0], -1)
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["input"] and [o.name for o in s.get_outputs()] == ["logits"]
    assert s.get_inputs()[0].shape[1:] == [3, arch["resolution"], arch["resolution"]], s.get_inputs()[0].shape
    y = s.run(None, {"input": x})[0]
    err = float(np.abs(y - ref).max()) / float(ref.std())
    print(json.dumps({"max_err_over_std": err, "std": float(ref.std()), "shape": list(y.shape)}))
    assert y.shape == ref.shape and ref.std() > 0 and err <= 1e-4, err
    """#

    /// Float32 NHWC images at `resolution` (used as given by infer, no resize).
    static func writeImages(_ path: String, count: Int, resolution r: Int, seed: UInt64) throws {
        var g = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let values = (0..<(count * r * r * 3)).map { _ -> Float in
            g ^= g << 13; g ^= g >> 7; g ^= g << 17
            return Float(g % 2001) / 1000 - 1  // -1 ... 1, as normalised pixels
        }
        var file = TensorFile()
        file["images"] = Tensor(values, shape: [count, r, r, 3])
        try file.write(to: path, compressed: false)
    }

    static func rawFloats(_ values: [Float], to path: String) throws {
        var data = Data(capacity: values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Exports `arch` of `checkpoint` (calibrated on the fixture's train shards) as ONNX
    /// with and without --fold-bn and as safetensors; runs infer --model on the safetensors
    /// model (exactly the supernet's logits, ExportSubnetToolTests) and checks both ONNX
    /// models against it with onnxruntime.
    static func exportAndCompare(_ f: E, checkpoint: String, arch: String, label: String) throws {
        let json = try JSONValue.parse(arch)
        let r = Int(try #require(json["resolution"]?.intValue))
        let calib = ["--calib", f.train, "--calib-batches", "2", "--batch-size", "8"]
        let images = "\(label)-x.safetensors"
        try writeImages(f.h.path(images), count: 3, resolution: r, seed: 5)
        let st = try f.h.run("export-subnet", ["--checkpoint", checkpoint, "--arch", arch, "-o", "\(label).safetensors.lz4"] + calib)
        #expect(st.status == 0, "\(st.stderr)")
        let inf = try f.h.run("infer", ["--model", "\(label).safetensors.lz4", "--images", images, "--transform", "resize", "--batch-size", "3", "-o", "\(label)-y.safetensors"])
        #expect(inf.status == 0, "\(inf.stderr)")
        let x = try #require(try TensorFile(contentsOf: f.h.path(images))["images"]).floats()
        let y = try #require(try TensorFile(contentsOf: f.h.path("\(label)-y.safetensors"))["logits"]).floats()
        try rawFloats(x, to: f.h.path("\(label)-x.raw"))
        try rawFloats(y, to: f.h.path("\(label)-y.raw"))
        for fold in [false, true] {
            let model = "\(label)\(fold ? "-folded" : "").onnx"
            let ex = try f.h.run("export-subnet", ["--checkpoint", checkpoint, "--arch", arch, "-o", model] + calib + (fold ? ["--fold-bn"] : []))
            #expect(ex.status == 0 && ex.stderr.contains("wrote \(model): ONNX opset 17"), "\(ex.stderr)")
            let c = try f.h.runExecutable("/usr/bin/env", ["python3", "-c", check, model, "\(label)-x.raw", "[3, \(r), \(r), 3]", "\(label)-y.raw",
                                                           fold ? "0" : "-1", arch])
            #expect(c.status == 0, "\(label)\(fold ? " --fold-bn" : ""): \(c.stdout)\(c.stderr)")
        }
    }

    @Test(.requires(.onnxruntime))
    func tinySubnetsOfAPlainAndAKShotSupernetMatchInfer() throws {
        let f = try E()
        try Self.exportAndCompare(f, checkpoint: f.checkpoint, arch: Self.tiny, label: "tiny")
        try Self.exportAndCompare(f, checkpoint: f.checkpoint, arch: E.minArch, label: "min")
        let k4 = f.h.path("k4.safetensors.lz4")
        let made = try f.h.run("train-supernet", ["--space", ToolHarness.space("tiny"), "--data", f.train, "--checkpoint", k4, "--steps", "0", "--kshot", "4"])
        #expect(made.status == 0, "\(made.stderr)")
        try Self.exportAndCompare(f, checkpoint: k4, arch: E.otherArch, label: "kshot")
    }

    @Test(.requires(.onnxruntime))
    func officialA0AndA6MatchInfer() throws {
        let f = try E()
        let official = f.h.path("official.safetensors.lz4")
        let made = try f.h.run("train-supernet", ["--space", ToolHarness.space("alphanet"), "--data", f.train, "--checkpoint", official, "--steps", "0"])
        #expect(made.status == 0, "\(made.stderr)")
        try Self.exportAndCompare(f, checkpoint: official, arch: Self.a0, label: "A0")
        try Self.exportAndCompare(f, checkpoint: official, arch: Self.a6, label: "A6")
    }

    @Test func foldBNWithoutONNXAndArchsOutsideTheSpaceAreRefused() throws {
        let f = try E()
        let fold = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", Self.tiny, "--fold-bn", "-o", "m.safetensors.lz4"])
        #expect(fold.status == 64 && fold.stderr.contains("--fold-bn goes with --format onnx"), "\(fold.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.h.path("m.safetensors.lz4")))
        // A width the tiny space does not offer: refused naming the field, nothing written.
        let wide = Self.tiny.replacingOccurrences(of: "\"width\":[16,", with: "\"width\":[40,")
        let bad = try f.h.run("export-subnet", ["--checkpoint", f.checkpoint, "--arch", wide, "--format", "onnx", "-o", "m.onnx"])
        #expect(bad.status != 0 && bad.stderr.contains("width"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.h.path("m.onnx")))
    }
}
