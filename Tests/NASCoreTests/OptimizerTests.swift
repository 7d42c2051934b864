import TestSupport
import Foundation
import Testing
@testable import NASCore

@Suite("Learning-rate schedules")
struct OptimizerScheduleTests {
    /// Values from the official formula evaluated in Python (`math.cos`).
    @Test func warmupCosineMatchesOfficialFormula() {
        let schedule = WarmupCosineSchedule(baseLearningRate: 0.1, maxIterations: 750, warmupIterations: 37)
        let expected: [(Int, Double)] = [
            (0, 0.0001), (1, 0.002799987717843593), (18, 0.048630819221345954), (37, 0.09940069048454477),
            (38, 0.09936792695075503), (375, 0.05), (749, 4.386484431184723e-07), (750, 0.0),
        ]
        for (i, lr) in expected {
            #expect(ReferenceFiles.relativeError(schedule.learningRate(iteration: i), lr, floor: 1e-12) <= 1e-15, "iteration \(i)")
        }
        let clamped = WarmupCosineSchedule(officialBaseLearningRate: 0.8, iterationsPerEpoch: 100, epochs: 10, warmupEpochs: 1,
                                           clampLearningRatePercent: 0.1)
        #expect(clamped.maxIterations == 1000 && clamped.warmupIterations == 100 && clamped.clampLearningRate == 0.8 * 0.1)
        for (i, lr) in [(0, 0.0008), (37, 0.2955035746067449), (38, 0.30341239078054505), (700, 0.1648858990830108),
                        (750, 0.11715728752538102), (1000, 0.08)] {
            #expect(ReferenceFiles.relativeError(clamped.learningRate(iteration: i), lr) <= 1e-15, "iteration \(i)")
        }
        // No warm-up: a pure cosine from base; constant warm-up method.
        let plain = WarmupCosineSchedule(baseLearningRate: 1, maxIterations: 4, warmupIterations: 0)
        #expect(plain.learningRate(iteration: 0) == 1 && abs(plain.learningRate(iteration: 2) - 0.5) < 1e-16)
        let constantWarmup = WarmupCosineSchedule(baseLearningRate: 1, maxIterations: 1000, warmupIterations: 10, warmupMethod: .constant)
        #expect(constantWarmup.warmupMultiplier(iteration: 9) == 0.001 && constantWarmup.warmupMultiplier(iteration: 10) == 1)
        #expect(LearningRateSchedule.constant(baseLearningRate: 0.1).learningRate(iteration: 12345) == 0.1)
        #expect(LearningRateSchedule.warmupCosine(schedule).learningRate(iteration: 375) == schedule.learningRate(iteration: 375))
    }

    @Test func officialBatchScalingUsesIntegerDivision() {
        let base = 0.1
        #expect(LearningRateSchedule.officialScaledBaseLearningRate(base, totalBatchSize: 64) == 0.1)
        #expect(LearningRateSchedule.officialScaledBaseLearningRate(base, totalBatchSize: 384) == 0.1)
        #expect(LearningRateSchedule.officialScaledBaseLearningRate(base, totalBatchSize: 512) == 0.2)
        #expect(LearningRateSchedule.officialScaledBaseLearningRate(base, totalBatchSize: 2048) == 0.8)
    }
}

@Suite("Optimizer")
struct OptimizerTests {
    @Test func clippingByValue() {
        var g: [Float] = [0.5, -2, 3, -0.25, .nan, 1, -1]
        let changed = GradientClipping.clipByValue(&g, limit: 1)
        #expect(changed == 2)
        #expect(Array(g[0 ..< 4]) == [0.5, -1, 1, -0.25] && g[4].isNaN && g[5] == 1 && g[6] == -1)
    }

    @Test func parameterGroupsFollowTheOfficialNameRule() {
        #expect(WeightDecayGroup.official(parameterName: "first_conv.conv.conv.weight") == .weight)
        #expect(WeightDecayGroup.official(parameterName: "first_conv.bn.bn.weight") == .bnBias)
        #expect(WeightDecayGroup.official(parameterName: "blocks.4.mobile_inverted_conv.depth_conv.se.fc.reduce.bias") == .bnBias)
        #expect(WeightDecayGroup.official(parameterName: "blocks.4.mobile_inverted_conv.depth_conv.se.fc.reduce.weight") == .weight)
        #expect(WeightDecayGroup.official(parameterName: "classifier.linear.linear.bias") == .bnBias)
        #expect(WeightDecayGroup.official(parameterName: "classifier.linear.linear.weight") == .weight)
        let layout = ParameterSegment.officialLayout([("a.conv.weight", 6), ("a.bn.bn.weight", 2), ("fc.bias", 3)])
        #expect(layout.map(\.offset) == [0, 6, 8] && layout.map(\.weightDecay) == [1e-5, 0, 0])
    }

    /// Over every trainable parameter of both spaces (names and shapes from
    /// `generator_checksums.json`), the official name rule equals "rank 1 =
    /// no decay".
    @Test(.requires(.referenceData))
    func nameRuleEqualsRankRuleForTheSupernet() throws {
        struct Entry: Decodable { var shape: [Int] }
        struct Space: Decodable { var state_dict: [String: Entry] }
        struct File: Decodable { var spaces: [String: Space] }
        let file = try ReferenceFiles.decodeReference(File.self, file: "generator_checksums.json")
        var checked = 0
        for space in file.spaces.values {
            for (name, entry) in space.state_dict where !Self.isBuffer(name) {
                let group = WeightDecayGroup.official(parameterName: name, rank: entry.shape.count)
                #expect((group == .bnBias) == (entry.shape.count == 1), "\(name)")
                checked += 1
            }
        }
        #expect(checked > 500)
    }

    static func isBuffer(_ name: String) -> Bool {
        name.contains("bn_tracking") || name.hasSuffix("running_mean") || name.hasSuffix("running_var")
            || name.hasSuffix("num_batches_tracked")
    }

    /// PyTorch's `_single_tensor_sgd`, written naively in Double, per tensor.
    private struct NaiveSGD {
        var momentum: Double, nesterov: Bool
        var buffers: [Int: [Double]] = [:]

        mutating func step(_ params: inout [[Double]], _ grads: [[Double]?], wd: [Double], lr: Double) {
            for t in params.indices {
                guard let grad = grads[t] else { continue }
                var d = grad
                if wd[t] != 0 { for i in d.indices { d[i] += wd[t] * params[t][i] } }
                if momentum != 0 {
                    var buf: [Double]
                    if let old = buffers[t] {
                        buf = old
                        for i in buf.indices { buf[i] = momentum * buf[i] + d[i] }
                    } else {
                        buf = d
                    }
                    buffers[t] = buf
                    if nesterov { for i in d.indices { d[i] += momentum * buf[i] } } else { d = buf }
                }
                for i in d.indices { params[t][i] -= lr * d[i] }
            }
        }
    }

    @Test(arguments: [(0.9, true), (0.9, false), (0.0, false)])
    func matchesNaivePyTorchAlgorithm(momentum: Double, nesterov: Bool) {
        let sizes = [5, 3, 4]
        let names = ["conv.weight", "conv.bn.weight", "fc.bias"]
        let segments = ParameterSegment.officialLayout(Array(zip(names, sizes)), weightDecayWeight: 0.01)
        var sgd = SGDMomentum(segments: segments, momentum: momentum, nesterov: nesterov)
        var random = SeededRandom(seed: 5)
        var params = (0 ..< 12).map { _ in Float(random.uniform() * 2 - 1) }
        var naiveParams = segments.map { s in params[s.range].map(Double.init) }
        var naive = NaiveSGD(momentum: momentum, nesterov: nesterov)
        // Step 2 gives no gradient to the middle tensor (PyTorch: grad None -> skipped).
        let masks: [[Bool]] = [[true, false, true], [true, false, true], [true, true, true], [false, true, true]]
        for (stepIndex, mask) in masks.enumerated() {
            let grads = (0 ..< 12).map { _ in Float(random.uniform() * 2 - 1) }
            let lr = 0.1 / Double(stepIndex + 1)
            sgd.step(parameters: &params, gradients: grads, learningRate: lr, hasGradient: mask)
            naive.step(&naiveParams, segments.enumerated().map { i, s in mask[i] ? grads[s.range].map(Double.init) : nil },
                       wd: segments.map(\.weightDecay), lr: lr)
            #expect(ReferenceFiles.relativeError(params, naiveParams.flatMap { $0 }) <= 1e-6, "step \(stepIndex)")
        }
        #expect(sgd.state.step == 4)
        #expect(sgd.state.hasMomentumBuffer == (momentum == 0 ? [false, false, false] : [true, true, true]))
        if momentum != 0 {
            // The middle tensor's buffer started at step 3 (its first gradient), like PyTorch's.
            let middle = segments[1].range
            #expect(ReferenceFiles.relativeError(Array(sgd.state.momentumBuffer[middle]), naive.buffers[1] ?? []) <= 1e-6)
        }
        // Restoring the state continues identically.
        var resumed = SGDMomentum(segments: segments, momentum: momentum, nesterov: nesterov)
        resumed.restore(sgd.state)
        var a = params, b = params
        let g = (0 ..< 12).map { Float($0) / 10 - 0.5 }
        sgd.step(parameters: &a, gradients: g, learningRate: 0.05)
        resumed.step(parameters: &b, gradients: g, learningRate: 0.05)
        #expect(a == b && sgd.state == resumed.state)
    }
}

@Suite("SGD step fused with clipping, in parallel")
struct FusedSGDStepTests {
    /// Segments of odd sizes (tails of 1-7 lanes), some large enough to be split between
    /// workers mid-segment, with and without weight decay.
    static func segments() -> [ParameterSegment] {
        var out: [ParameterSegment] = []
        var offset = 0
        for (i, n) in [3, 70_001, 8, 131_077, 0, 15, 200_003].enumerated() {
            out.append(ParameterSegment(name: "t\(i)", offset: offset, count: n, weightDecay: i % 2 == 0 ? 4e-5 : 0))
            offset += n
        }
        return out
    }

    /// Three steps of the fused parallel step against `clipByValue` then the serial
    /// `step`, every value bit for bit (NaN gradients included; the gradients left as
    /// `clipByValue` leaves them), for 1-3 workers, Nesterov and classic momentum, no
    /// momentum, clipping on and off, some segments without a gradient; the clipped
    /// counts agree.
    @Test(arguments: [1, 2, 3])
    func equalsClippingThenTheSerialStep(workers: Int) {
        let context = ComputeContext(workers: workers)
        for (momentum, nesterov, clip) in [(0.9, true, Float(0.01)), (0.9, false, nil), (0.0, false, Float(0.02))] as [(Double, Bool, Float?)] {
            let segments = Self.segments()
            let n = segments.map { $0.offset + $0.count }.max() ?? 0
            var g = SeededRandom(seed: 3)
            var serialParams = (0..<n).map { _ in g.uniformFloat() * 2 - 1 }
            var fusedParams = serialParams
            var serial = SGDMomentum(segments: segments, momentum: momentum, nesterov: nesterov)
            var fused = serial
            for step in 0..<3 {
                var grads = (0..<n).map { _ in (g.uniformFloat() * 2 - 1) * 0.03 }
                grads[5] = .nan
                grads[70_010] = -.nan
                let has = segments.indices.map { ($0 + step) % 3 != 1 }
                var fusedGrads = grads
                var clipped = 0
                if let clip {
                    for (k, s) in segments.enumerated() where has[k] {
                        clipped += grads.withUnsafeMutableBufferPointer { GradientClipping.clipByValue(UnsafeMutableBufferPointer(rebasing: $0[s.range]), limit: clip) }
                    }
                }
                serial.step(parameters: &serialParams, gradients: grads, learningRate: 0.1 + Double(step), hasGradient: has)
                let fusedClipped = fusedParams.withUnsafeMutableBufferPointer { p in
                    fusedGrads.withUnsafeMutableBufferPointer { fused.step(context, parameters: p, gradients: $0, learningRate: 0.1 + Double(step), hasGradient: has, clip: clip) }
                }
                #expect(fusedClipped == clipped, "step \(step): clipped \(fusedClipped), serial \(clipped)")
                #expect(fusedGrads.map(\.bitPattern) == grads.map(\.bitPattern), "step \(step): the gradients are not left as clipByValue leaves them")
                #expect(fusedParams.map(\.bitPattern) == serialParams.map(\.bitPattern), "step \(step), momentum \(momentum), clip \(clip.map { "\($0)" } ?? "none")")
                #expect(fused.state.momentumBuffer.map(\.bitPattern) == serial.state.momentumBuffer.map(\.bitPattern))
                #expect(fused.state.hasMomentumBuffer == serial.state.hasMomentumBuffer && fused.state.step == serial.state.step)
            }
        }
    }
}
