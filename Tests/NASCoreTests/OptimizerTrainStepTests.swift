import Foundation
import Testing
@testable import NASCore
import TestSupport

/// The optimizer against the official `optimizer.step()` of
/// `train_step_reference.json` (tiny space, Float, two steps, lr 0.1,
/// momentum 0.9, Nesterov, official groups). The file stores the first 8
/// values of every tensor; the update is element-wise, so those 8 values of
/// the weights, the clipped gradients and the momentum buffers are a complete
/// check of the step for those elements, including the skipped grad-None tensors.
@Suite("Optimizer against the official train step", .requires(.referenceData))
struct OptimizerTrainStepTests {
    private struct Stats: Decodable {
        var numel: Int
        var first: [Double]
    }

    private struct Step: Decodable {
        var grad_before_clip: [String: Stats?]
        var grad_after_clip_changed_only: [String: Stats]
        var state_after_step: [String: Stats]
        var momentum_buffer_after_step: [String: Stats]
    }

    private struct Run: Decodable { var steps: [Step] }
    private struct File: Decodable {
        var f32: Run
        var params_with_grad_none: [String]
    }

    private struct ChecksumEntry: Decodable { var shape: [Int] }
    private struct ChecksumSpace: Decodable { var state_dict: [String: ChecksumEntry] }
    private struct Checksums: Decodable { var spaces: [String: ChecksumSpace] }

    @Test func twoOfficialSteps() throws {
        let file = try ReferenceFiles.decodeReference(File.self, file: "train_step_reference.json")
        let shapes = try #require(try ReferenceFiles.decodeReference(Checksums.self, file: "generator_checksums.json").spaces["tiny"])
        let steps = file.f32.steps
        #expect(steps.count == 2)
        // Trainable parameters = the tensors that have a grad entry (null or not).
        let names = steps[0].grad_before_clip.keys.sorted()
        let counts = try names.map { name in min(8, try #require(shapes.state_dict[name]).shape.reduce(1, *)) }
        let segments = ParameterSegment.officialLayout(Array(zip(names, counts)), weightDecayWeight: 1e-5, weightDecayBNBias: 0)
        var sgd = SGDMomentum(segments: segments, momentum: 0.9, nesterov: true)

        // Initial weights: the generator's first values with each tensor's full shape.
        var params = [Float]()
        for (name, count) in zip(names, counts) {
            let shape = try #require(shapes.state_dict[name]).shape
            params += try ReferenceGenerator.tensor(name: name, shape: shape).prefix(count)
        }
        let untouched = params

        for (index, step) in steps.enumerated() {
            var grads = [Float](repeating: 0, count: params.count)
            var hasGradient = [Bool]()
            for (segment, name) in zip(segments, names) {
                let stats = step.grad_after_clip_changed_only[name] ?? (step.grad_before_clip[name] ?? nil)
                hasGradient.append(stats != nil)
                if let stats {
                    for (i, v) in stats.first.prefix(segment.count).enumerated() { grads[segment.offset + i] = Float(v) }
                }
            }
            #expect(hasGradient.filter { !$0 }.count == file.params_with_grad_none.count)
            sgd.step(parameters: &params, gradients: grads, learningRate: 0.1, hasGradient: hasGradient)

            var worstParam = 0.0, worstBuffer = 0.0
            for (s, (segment, name)) in zip(segments, names).enumerated() {
                let ours = Array(params[segment.range])
                let reference = try #require(step.state_after_step[name]).first.prefix(segment.count)
                worstParam = max(worstParam, ReferenceFiles.relativeError(ours, Array(reference)))
                if let buffer = step.momentum_buffer_after_step[name] {
                    #expect(sgd.state.hasMomentumBuffer[s], "\(name)")
                    let oursBuffer = Array(sgd.state.momentumBuffer[segment.range])
                    worstBuffer = max(worstBuffer, ReferenceFiles.relativeError(oursBuffer, Array(buffer.first.prefix(segment.count))))
                } else {
                    // grad None so far: no buffer, weights bit-identical to the start.
                    #expect(!sgd.state.hasMomentumBuffer[s], "\(name)")
                    #expect(ours == Array(untouched[segment.range]), "\(name)")
                }
            }
            // Float, a few roundings per element: agreement to about 1 ulp of the weights.
            #expect(worstParam <= 2e-7, "step \(index + 1): weights \(worstParam)")
            #expect(worstBuffer <= 2e-7, "step \(index + 1): momentum \(worstBuffer)")
        }
    }
}
