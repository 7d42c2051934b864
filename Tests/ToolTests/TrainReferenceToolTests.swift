import FileFormats
import Foundation
import Testing
import TestSupport

/// The official two-step reference (../shared/reference/train_step_reference.json)
/// reproduced through the train-supernet binary, with its default data options (exact
/// epochs): the generator's weights as a plain state_dict, its 8 images as a float32
/// shard, its 4 subnets through --archs, one step, a resume, a second step. The library
/// test (TrainStepReferenceTests) matches the same numbers without the tool around it.
@Suite("Official training steps through train-supernet")
struct TrainReferenceToolTests {
    static func load(_ path: String) throws -> JSONValue {
        try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
    }

    /// Norm to 1e-4 relative; sum and first values to 1e-3 of the norm (the library
    /// test's tolerances); a reference norm of 0 (zero by construction) to 1e-6.
    static func matches(_ v: [Float], _ ref: JSONValue) -> Bool {
        guard let norm = ref["norm"]?.doubleValue, let sum = ref["sum"]?.doubleValue,
              let first = ref["first"]?.arrayValue?.compactMap(\.doubleValue) else { return false }
        let n = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let s = v.reduce(0.0) { $0 + Double($1) }
        if norm == 0 { return n <= 1e-6 }
        return abs(n - norm) <= 1e-4 * norm && abs(s - sum) <= 1e-3 * norm
            && zip(v.prefix(8), first).allSatisfy { abs(Double($0) - $1) <= 1e-3 * norm }
    }

    @Test(.requires(.referenceData)) func twoOfficialStepsThroughTheBinary() throws {
        let h = try ToolHarness()
        let ref = try Self.load(Paths.reference + "/train_step_reference.json")
        let setup = try #require(ref["setup"])
        let shape = try #require(setup["input"]?["shape"]?.arrayValue).compactMap(\.intValue).map(Int.init)
        let (b, r) = (shape[0], shape[2])
        let classes = try #require(ref["n_classes"]?.intValue)

        // The generator's input (NCHW) as an NHWC float32 shard, and its labels.
        let nchw = ReferenceGenerator.input(batch: b, resolution: r)
        var nhwc = [Float](repeating: 0, count: nchw.count)
        for n in 0..<b { for c in 0..<3 { for y in 0..<r { for x in 0..<r {
            nhwc[((n * r + y) * r + x) * 3 + c] = nchw[((n * 3 + c) * r + y) * r + x]
        } } } }
        let labels = ReferenceGenerator.labels(count: b, classes: Int(classes))
        #expect(labels.map(Int64.init) == setup["labels"]?["values"]?.arrayValue?.compactMap(\.intValue))
        var shard = TensorFile(metadata: [:])
        shard["images"] = Tensor(nhwc, shape: [b, r, r, 3])
        shard["labels"] = Tensor(labels, shape: [b])
        try shard.write(to: h.path("ref.safetensors"))
        let archs = try #require(setup["subnets_in_order"]?.arrayValue)
        try (archs.map(\.jsonText).joined(separator: "\n") + "\n").write(toFile: h.path("archs.jsonl"), atomically: true, encoding: .utf8)

        // The generator's weights, in the names and shapes of a step-0 checkpoint, as a
        // plain state_dict (no metadata, no optimizer state).
        let space = ToolHarness.space("tiny")
        let r0 = try h.run("train-supernet", ["--space", space, "--data", h.path("ref.safetensors"), "--checkpoint", "init.safetensors", "--steps", "0", "--batch-size", String(b)])
        #expect(r0.status == 0, "\(r0.stderr)")
        let initial = try TensorFile(contentsOf: h.path("init.safetensors"))
        var plain = TensorFile(metadata: [:])
        for (name, t) in initial.tensors where !name.hasPrefix("optimizer.") {
            plain[name] = t.dtype == .f32 ? Tensor(try ReferenceGenerator.tensor(name: name, shape: t.shape), shape: t.shape) : t
        }
        try plain.write(to: h.path("c.safetensors"))

        // The reference's deviations from the official recipe: no dropout or drop-connect,
        // every subnet at 32 px, constant lr 0.1; the data options are the defaults.
        let args = ["--space", space, "--data", h.path("ref.safetensors"), "--checkpoint", "c.safetensors",
                    "--archs", h.path("archs.jsonl"), "--num-arch", "4", "--batch-size", String(b), "--augment", "none",
                    "--resolution", String(r), "--dropout", "0", "--drop-connect", "0", "--lr", "0.1", "--lr-schedule", "constant",
                    "--log-every", "1"]
        let steps = try #require(ref["f32"]?["steps"]?.arrayValue)
        #expect(steps.count == 2)
        for (k, stepRef) in steps.enumerated() {
            let run = try h.run("train-supernet", args + ["--steps", String(k + 1)])
            #expect(run.status == 0, "\(run.stderr)")
            if k == 1 { #expect(run.stderr.contains("resuming c.safetensors at step 1"), "\(run.stderr)") }
            // Losses, as the log rounds them (6 decimals).
            let line = try JSONValue.parse(try #require(run.lines.last))
            let ours = try #require(line["loss"]?.arrayValue).compactMap(\.doubleValue)
            let theirs = try #require(stepRef["losses"]?.arrayValue).compactMap(\.doubleValue)
            #expect(ours.count == theirs.count)
            for (o, t) in zip(ours, theirs) { #expect(abs(o - t) <= max(1e-4 * abs(t), 1e-6), "step \(k + 1) loss \(o) vs \(t)") }
            // Weights and momentum after the step.
            let file = try TensorFile(contentsOf: h.path("c.safetensors"))
            #expect(file.metadata["step"] == String(k + 1))
            let state = try #require(stepRef["state_after_step"]?.objectValue)
            let momentum = try #require(stepRef["momentum_buffer_after_step"])
            // Gradients that are zero by construction: PyTorch's momentum there is rounding
            // noise (~1e-7), ours must be as small (the library test's rule).
            let zero = Set(ref["structurally_zero_grads"]?["step\(k + 1)"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            #expect(!zero.isEmpty)
            var failures: [String] = []
            for (name, s) in state {
                guard let t = file[name] else { failures.append("\(name) missing"); continue }
                guard t.dtype == .f32 else { continue }
                if !Self.matches(t.floats(), s) { failures.append("weight \(name)") }
                if let m = momentum[name], m != .null {
                    guard let mt = file["optimizer.momentum." + name] else { failures.append("momentum \(name) missing"); continue }
                    let v = mt.floats()
                    let ok = zero.contains(name) ? v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() <= 1e-6 : Self.matches(v, m)
                    if !ok { failures.append("momentum \(name)") }
                }
            }
            #expect(state.count > 100)
            #expect(failures.isEmpty, "step \(k + 1): \(failures.count) tensors differ: \(failures.prefix(8))")
        }
    }
}
