import FileFormats
import NASCore
import Supernet
import Training
import Testing
import TestSupport

/// Two official AlphaNet sandwich steps (train_step_reference.json, tiny space):
/// losses, gradients, weights and momentum after each step.
@Suite struct TrainStepReferenceTests {
    struct Stats {
        var norm = 0.0, sum = 0.0
        var first: [Double] = []
        init(_ v: UnsafeBufferPointer<Float>) {
            for x in v { norm += Double(x) * Double(x); sum += Double(x) }
            norm = norm.squareRoot()
            first = v.prefix(8).map(Double.init)
        }
    }

    /// Norm to 1e-4 relative; sum and first values to 1e-3 of the norm; a
    /// reference norm of 0 (zero by construction) by an absolute tolerance.
    func compare(_ ours: UnsafeBufferPointer<Float>, _ ref: JSONValue, _ what: String, zeroByConstruction: Bool = false) -> Bool {
        let s = Stats(ours)
        if zeroByConstruction {
            // Rounding noise around an exact zero: PyTorch's is ~1e-7 too.
            #expect(s.norm <= 1e-6, "\(what): norm \(s.norm), zero by construction")
            return s.norm <= 1e-6
        }
        let norm = ref["norm"]?.doubleValue ?? .nan
        let sum = ref["sum"]?.doubleValue ?? .nan
        let first = ref["first"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        if norm == 0 {
            #expect(s.norm <= 1e-6, "\(what): norm \(s.norm), zero by construction")
            return s.norm <= 1e-6
        }
        var ok = abs(s.norm - norm) <= 1e-4 * norm
        ok = ok && abs(s.sum - sum) <= 1e-3 * norm
        ok = ok && zip(s.first, first).allSatisfy { abs($0 - $1) <= 1e-3 * norm }
        #expect(ok, "\(what): norm \(s.norm) vs \(norm), sum \(s.sum) vs \(sum), first \(s.first.prefix(3)) vs \(first.prefix(3))")
        return ok
    }

    @Test(.requires(.referenceData)) func twoSandwichStepsMatchOfficialCode() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let ref = try loadJSON(Paths.reference + "/train_step_reference.json")
        let setup = try #require(ref["setup"])
        let archs = try #require(setup["subnets_in_order"]?.arrayValue).map { try Arch(json: $0) }
        let shape = try #require(setup["input"]?["shape"]?.arrayValue).compactMap(\.intValue).map(Int.init)
        let (b, r) = (shape[0], shape[2])
        let input = Reference.inputNHWC(batch: b, resolution: r)
        let labels = ReferenceGenerator.labels(count: b, classes: space.nClasses)
        #expect(labels.map(Int64.init) == setup["labels"]?["values"]?.arrayValue?.compactMap(\.intValue))

        let model = Supernet(weights: try Reference.weights(space), space: space, context: ComputeContext(workers: 2))
        var options = SandwichOptions()
        options.regularization = .none
        let trainer = SandwichTrainer(model: model, options: options)
        var random = SeededRandom(seed: 0)
        let steps = try #require(ref["f32"]?["steps"]?.arrayValue)
        let layout = model.layout
        for (k, stepRef) in steps.enumerated() {
            let result = input.withUnsafeBufferPointer {
                trainer.step(archs: archs, images: $0, shape: Shape4(n: b, h: r, w: r, c: 3), labels: labels, learningRate: 0.1, random: &random)
            }
            let refLosses = try #require(stepRef["losses"]?.arrayValue).compactMap(\.doubleValue)
            for (ours, theirs) in zip(result.losses, refLosses) {
                #expect(abs(ours - theirs) <= 1e-4 * abs(theirs), "step \(k + 1) loss \(ours) vs \(theirs)")
            }
            #expect(result.clipped == Int(stepRef["n_grad_elements_clipped"]?.intValue ?? -1), "step \(k + 1) clipped elements")
            let before = try #require(stepRef["grad_before_clip"])
            let after = stepRef["grad_after_clip_changed_only"]
            let state = try #require(stepRef["state_after_step"])
            let momentum = try #require(stepRef["momentum_buffer_after_step"])
            let zero = Set(ref["structurally_zero_grads"]?["step\(k + 1)"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            #expect(!zero.isEmpty)
            var failures = 0
            let buf = trainer.optimizer.state.momentumBuffer
            for e in layout.entries where e.role.isParameter {
                let range = e.offset..<(e.offset + e.count)
                let g = UnsafeBufferPointer(rebasing: model.gradients[range])
                let refGrad = after?[e.name] ?? before[e.name]
                if let refGrad, refGrad != .null {
                    if !compare(g, refGrad, "step \(k + 1) grad \(e.name)", zeroByConstruction: zero.contains(e.name)) { failures += 1 }
                } else {
                    #expect(g.allSatisfy { $0 == 0 }, "step \(k + 1) grad \(e.name) is None in PyTorch")
                }
                if let s = state[e.name], !compare(UnsafeBufferPointer(rebasing: model.parameters[range]), s, "step \(k + 1) weight \(e.name)") { failures += 1 }
                if let m = momentum[e.name], m != .null {
                    let ok = buf.withUnsafeBufferPointer { compare(UnsafeBufferPointer(rebasing: $0[range]), m, "step \(k + 1) momentum \(e.name)", zeroByConstruction: zero.contains(e.name)) }
                    if !ok { failures += 1 }
                }
                if failures > 10 { return }
            }
        }
    }
}
