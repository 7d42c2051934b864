import NASCore
import TestSupport
import Testing
@testable import Training

/// Confident teachers and students (logit gaps of 100 and more): the official
/// f_divergence forms `p / q` from probabilities and gives NaN there. Ours must
/// stay finite in Float and agree with a Double evaluation of the same logits
/// (relative error as in `LossReferenceTests`, gradient floor 1/B).
@Suite("Losses with confident logits")
struct LossStabilityTests {
    static let gaps: [Float] = [100, 1000, 10_000]

    /// Rows of `[B = 4, C = 10]` logits: `confident` puts `gap` on one class,
    /// `-gap` on another and small values elsewhere; `flat` stays within [-1, 1].
    private static func logits(gap: Float, confident: Bool, shift: Int) -> [Float] {
        var random = SeededRandom(seed: UInt64(shift) &+ UInt64(gap))
        let batch = 4, classes = 10
        var z = (0 ..< batch * classes).map { _ in random.uniformFloat() * 2 - 1 }
        if confident {
            for n in 0 ..< batch {
                z[n * classes + (n + shift) % classes] = gap
                z[n * classes + (n + shift + 3) % classes] = -gap
            }
        }
        return z
    }

    private static let layouts: [(student: Bool, teacher: Bool, shift: Int)] = [
        (false, true, 0),  // flat student, confident teacher
        (true, false, 0),  // confident student, flat teacher
        (true, true, 1),   // both confident, disagreeing
        (true, true, 0),   // both confident, agreeing (with the same seed: identical rows)
    ]

    @Test(arguments: gaps)
    func finiteAndCloseToDouble(gap: Float) {
        let batch = 4, classes = 10
        for (index, layout) in Self.layouts.enumerated() {
            let student = Self.logits(gap: gap, confident: layout.student, shift: layout.shift)
            let teacher = layout.student && layout.teacher && layout.shift == 0
                ? student.map { $0 + 0.5 }   // agreeing: same argmax, shifted by a constant
                : Self.logits(gap: gap, confident: layout.teacher, shift: 7)
            let labels: [Int32] = [0, 3, 5, 9]
            let context = "gap \(gap) layout \(index)"
            let studentD = student.map(Double.init), teacherD = teacher.map(Double.init)

            let ce = SmoothedCrossEntropy().lossAndGradient(logits: student, labels: labels, batch: batch, classes: classes)
            let ceD = SmoothedCrossEntropy().lossAndGradient(logits: studentD, labels: labels, batch: batch, classes: classes)
            expectClose(ce, ceD, batch: batch, "ce \(context)")

            let kl = SoftTargetCrossEntropy().lossAndGradient(student: student, teacher: teacher, batch: batch, classes: classes)
            let klD = SoftTargetCrossEntropy().lossAndGradient(student: studentD, teacher: teacherD, batch: batch, classes: classes)
            expectClose(kl, klD, batch: batch, "kl \(context)")

            for loss in [AdaptiveAlphaDivergence(), AdaptiveAlphaDivergence(alphaMin: -0.5, alphaMax: 0, importanceWeightClip: 5)] {
                let a = loss.lossAndGradient(student: student, teacher: teacher, batch: batch, classes: classes)
                let aD = loss.lossAndGradient(student: studentD, teacher: teacherD, batch: batch, classes: classes)
                expectClose(a, aD, batch: batch, "adaptive \(loss.alphaMin) \(context)")
                let terms = loss.sampleTerms(student: student, teacher: teacher, batch: batch, classes: classes)
                let termsD = loss.sampleTerms(student: studentD, teacher: teacherD, batch: batch, classes: classes)
                for (t, tD) in zip(terms, termsD) {
                    #expect(t.divergenceAlphaMin.isFinite && t.divergenceAlphaMax.isFinite, "\(context)")
                    #expect(ReferenceFiles.relativeError(t.divergenceAlphaMin, tD.divergenceAlphaMin, floor: 1) <= 1e-4, "\(context)")
                    #expect(ReferenceFiles.relativeError(t.divergenceAlphaMax, tD.divergenceAlphaMax, floor: 1) <= 1e-4, "\(context)")
                }
            }
        }
    }

    private func expectClose(_ f: (loss: Float, gradient: [Float]), _ d: (loss: Double, gradient: [Double]), batch: Int, _ context: String) {
        #expect(f.loss.isFinite && f.gradient.allSatisfy(\.isFinite), "\(context)")
        #expect(ReferenceFiles.relativeError(f.loss, d.loss, floor: 1) <= 1e-4, "\(context): \(f.loss) vs \(d.loss)")
        #expect(ReferenceFiles.relativeError(f.gradient, d.gradient, floor: 1 / Double(batch)) <= 1e-4, "\(context)")
    }
}

/// Gradients against central finite differences (Double).
@Suite("Loss gradients")
struct LossGradientTests {
    private static func randomLogits(count: Int, seed: UInt64, scale: Double) -> [Double] {
        var random = SeededRandom(seed: seed)
        return (0 ..< count).map { _ in (random.uniform() * 2 - 1) * scale }
    }

    /// max |analytic - numeric| / max |numeric| over all logits, step h.
    private func finiteDifferenceError(_ x: [Double], _ analytic: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> Double {
        var numeric = [Double](repeating: 0, count: x.count)
        for i in x.indices {
            var plus = x, minus = x
            plus[i] += h
            minus[i] -= h
            numeric[i] = (f(plus) - f(minus)) / (2 * h)
        }
        return ReferenceFiles.relativeError(analytic, numeric)
    }

    @Test(arguments: [0.0, 0.1, 0.5])
    func smoothedCrossEntropy(smoothing: Double) {
        let batch = 3, classes = 7
        let z = Self.randomLogits(count: batch * classes, seed: 11, scale: 3)
        let labels: [Int32] = [6, 0, 2]
        let loss = SmoothedCrossEntropy(labelSmoothing: smoothing)
        let g = loss.lossAndGradient(logits: z, labels: labels, batch: batch, classes: classes).gradient
        let err = finiteDifferenceError(z, g) { loss.lossAndGradient(logits: $0, labels: labels, batch: batch, classes: classes).loss }
        #expect(err <= 1e-8)
    }

    /// Temperature and the optional hard-label term of KLLossSoft.
    @Test(arguments: [1.0, 2.5])
    func softTargetCrossEntropy(temperature: Double) {
        let batch = 3, classes = 7
        let s = Self.randomLogits(count: batch * classes, seed: 12, scale: 3)
        let t = Self.randomLogits(count: batch * classes, seed: 13, scale: 4)
        let labels: [Int32] = [1, 4, 6]
        let loss = SoftTargetCrossEntropy(temperature: temperature, softWeight: 0.7)
        func evaluate(_ x: [Double], withLabels: Bool) -> (Double, [Double]) {
            var g = [Double](repeating: 0, count: x.count)
            let value = x.withUnsafeBufferPointer { xs in
                t.withUnsafeBufferPointer { ts in
                    labels.withUnsafeBufferPointer { ys in
                        g.withUnsafeMutableBufferPointer { gs in
                            loss(student: xs, teacher: ts, labels: withLabels ? ys : nil, batch: batch, classes: classes, gradient: gs)
                        }
                    }
                }
            }
            return (value, g)
        }
        for withLabels in [false, true] {
            let g = evaluate(s, withLabels: withLabels).1
            #expect(finiteDifferenceError(s, g) { evaluate($0, withLabels: withLabels).0 } <= 1e-8, "labels \(withLabels)")
        }
        // Without labels the value is the cross-entropy H(p, q) >= H(p): at s = t it is the teacher entropy.
        if temperature == 1 {
            let (atTeacher, gradAtTeacher) = evaluate(t, withLabels: false)
            #expect(atTeacher > 0)
            #expect(gradAtTeacher.allSatisfy { abs($0) < 1e-15 })
        }
    }

    /// Without clipping the surrogate's gradient is the gradient of D_alpha
    /// itself (the detached weights make autograd produce d D / d s), for every
    /// branch of f_divergence: alpha ~ 0, alpha ~ 1 and the power branch.
    @Test(arguments: [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    func adaptiveSurrogateIsDivergenceGradient(alpha: Double) {
        let classes = 9
        let s = Self.randomLogits(count: classes, seed: 21, scale: 2)
        let t = Self.randomLogits(count: classes, seed: 22, scale: 2)
        // Both sides equal: the alpha_max side is taken (ties go right).
        let loss = AdaptiveAlphaDivergence(alphaMin: alpha, alphaMax: alpha, importanceWeightClip: 1e300)
        var g = [Double](repeating: 0, count: classes)
        let terms = s.withUnsafeBufferPointer { xs in
            t.withUnsafeBufferPointer { ts in
                g.withUnsafeMutableBufferPointer { gs in loss.sample(student: xs, teacher: ts, gradient: gs) }
            }
        }
        #expect(!terms.usesAlphaMin)
        #expect(terms.divergenceAlphaMax > 0)
        let err = finiteDifferenceError(s, g) { x in
            loss.sampleTerms(student: x, teacher: t, batch: 1, classes: classes)[0].divergenceAlphaMax
        }
        #expect(err <= 1e-7, "alpha \(alpha)")
    }

    /// The adaptive loss picks, per sample, the side with the larger divergence
    /// and its gradient is that side's gradient scaled by 1/B.
    @Test func adaptiveSelectsLargerSidePerSample() {
        let batch = 5, classes = 6
        let s = Self.randomLogits(count: batch * classes, seed: 31, scale: 3)
        let t = Self.randomLogits(count: batch * classes, seed: 32, scale: 3)
        let loss = AdaptiveAlphaDivergence()
        let (mean, gradient) = loss.lossAndGradient(student: s, teacher: t, batch: batch, classes: classes)
        let terms = loss.sampleTerms(student: s, teacher: t, batch: batch, classes: classes)
        #expect(abs(mean - terms.map(\.loss).reduce(0, +) / Double(batch)) <= 1e-15 * max(1, abs(mean)))
        for n in 0 ..< batch {
            let chosen = terms[n].usesAlphaMin ? loss.alphaMin : loss.alphaMax
            #expect(terms[n].usesAlphaMin == (terms[n].divergenceAlphaMin > terms[n].divergenceAlphaMax))
            let single = AdaptiveAlphaDivergence(alphaMin: chosen, alphaMax: chosen, importanceWeightClip: loss.importanceWeightClip)
            let row = Array(s[n * classes ..< (n + 1) * classes]), teacherRow = Array(t[n * classes ..< (n + 1) * classes])
            let (value, rowGradient) = single.lossAndGradient(student: row, teacher: teacherRow, batch: 1, classes: classes)
            #expect(abs(value - terms[n].loss) <= 1e-14 * max(1, abs(value)))
            let expected = rowGradient.map { $0 / Double(batch) }
            #expect(ReferenceFiles.relativeError(Array(gradient[n * classes ..< (n + 1) * classes]), expected) <= 1e-14)
        }
    }

    /// The losses add into the gradient buffer (llm.c convention), never overwrite it.
    @Test func gradientsAccumulate() {
        let batch = 2, classes = 4
        let s: [Float] = [0.1, -0.3, 2, 1, 0, 0, 0, 5]
        let t: [Float] = [1, 0, 0, 0, 0.5, 0.5, -1, 2]
        let fresh = AdaptiveAlphaDivergence().lossAndGradient(student: s, teacher: t, batch: batch, classes: classes).gradient
        var g = [Float](repeating: 1, count: s.count)
        s.withUnsafeBufferPointer { xs in
            t.withUnsafeBufferPointer { ts in
                g.withUnsafeMutableBufferPointer { gs in
                    _ = AdaptiveAlphaDivergence()(student: xs, teacher: ts, batch: batch, classes: classes, gradient: gs)
                }
            }
        }
        #expect(zip(g, fresh).allSatisfy { $0 == 1 + $1 })
    }
}
