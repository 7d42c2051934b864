import Foundation
import NASCore
import Testing

@Suite("Kernel BatchNorm and activations")
struct KernelNormActTests {
    let ctx = ComputeContext(workers: 2)

    /// (n, h, w, c, cMax, offset): offset shifts the data to test |mean| >> std.
    static let bnCases: [(Int, Int, Int, Int, Int, Float)] = [
        (2, 3, 5, 7, 9, 0),
        (4, 4, 4, 16, 16, 0),
        (3, 5, 7, 24, 32, 100),
        (2, 1, 1, 13, 13, 0),
    ]

    @Test(arguments: bnCases)
    func batchNormTraining(_ cfg: (Int, Int, Int, Int, Int, Float)) {
        let (n, h, w, c, cMax, offset) = cfg
        let s = Shape4(n: n, h: h, w: w, c: c)
        let x = Buf(randomFloats(s.count, seed: 31).map { $0 * 2 + offset })
        let gamma = Buf(randomFloats(cMax, seed: 32, range: 0.5...1.5)), beta = Buf(randomFloats(cMax, seed: 33))
        let y = Buf(count: s.count), mean = Buf(count: c), inv = Buf(count: c)
        let rm0 = randomFloats(cMax, seed: 34), rv0 = randomFloats(cMax, seed: 35, range: 0.5...2)
        let rm = Buf(rm0), rv = Buf(rv0)
        var tracked = 0
        let f = BatchNorm.averagingFactor(momentum: 0.1, batchesTracked: &tracked)
        #expect(tracked == 1 && f == 0.1)
        BatchNorm.forwardTraining(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, y: y.m,
                                  saveMean: mean.m, saveInvStd: inv.m,
                                  running: .init(mean: rm.m, variance: rv.m, factor: f))
        let ref = Naive.batchNorm(x.doubles, s, gamma: gamma.doubles, beta: beta.doubles)
        #expect(relError(y.array(s.count), ref.y) < 1e-5)
        #expect(relError(mean.array(c), ref.mean) < 1e-6)
        let m = Double(s.pixels)
        let rmRef = (0..<c).map { 0.9 * Double(rm0[$0]) + 0.1 * ref.mean[$0] }
        let rvRef = (0..<c).map { 0.9 * Double(rv0[$0]) + 0.1 * ref.varB[$0] * m / (m - 1) }
        #expect(relError(rm.array(c), rmRef) < 1e-5)
        #expect(relError(rv.array(c), rvRef) < 1e-5)
        // Channels beyond the prefix are untouched.
        #expect(Array(rm.p[c..<cMax]) == Array(rm0[c..<cMax]))

        // Backward against finite differences of the naive forward.
        let rr = randomFloats(s.count, seed: 36), rd = rr.map(Double.init)
        let dy = Buf(rr), dx = Buf(count: s.count)
        let dg = Buf(count: cMax, value: 1), db = Buf(count: cMax, value: 2)
        BatchNorm.backward(ctx, x: x.r, shape: s, gamma: gamma.r, mean: mean.r, invStd: inv.r, dy: dy.r,
                           dx: dx.m, dGamma: dg.m, dBeta: db.m)
        let xi = sampleIndices(s.count, limit: 40)
        let fdX = finiteDifference(x.doubles, indices: xi, h: 1e-3) {
            dot(Naive.batchNorm($0, s, gamma: gamma.doubles, beta: beta.doubles).y, rd)
        }
        #expect(relError(xi.map { dx.p[$0] }, fdX) < 2e-3)
        let fdG = finiteDifference(gamma.doubles, indices: Array(0..<c)) {
            dot(Naive.batchNorm(x.doubles, s, gamma: $0, beta: beta.doubles).y, rd)
        }
        #expect(relError((0..<c).map { dg.p[$0] - 1 }, fdG) < 1e-4)
        let fdB = finiteDifference(beta.doubles, indices: Array(0..<c)) {
            dot(Naive.batchNorm(x.doubles, s, gamma: gamma.doubles, beta: $0).y, rd)
        }
        #expect(relError((0..<c).map { db.p[$0] - 2 }, fdB) < 1e-4)
    }

    /// A tensor above `BatchNorm.streamThresholdBytes` (17 MB; 35 MB of x and dy for the
    /// backward), which takes the statistics passes that first stream each block in
    /// address order, against the naive forward and the closed-form backward in Double.
    /// Odd channel count: the SIMD tails too.
    @Test func batchNormOnTensorsBiggerThanTheStreamingThreshold() {
        let s = Shape4(n: 4, h: 48, w: 48, c: 461)
        #expect(4 * s.count > BatchNorm.streamThresholdBytes)
        let x = Buf(randomFloats(s.count, seed: 41).map { $0 * 3 + 5 })
        let gamma = Buf(randomFloats(s.c, seed: 42, range: 0.5...1.5)), beta = Buf(randomFloats(s.c, seed: 43))
        let y = Buf(count: s.count), mean = Buf(count: s.c), inv = Buf(count: s.c)
        BatchNorm.forwardTraining(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, y: y.m, saveMean: mean.m, saveInvStd: inv.m)
        let xd = x.doubles, gd = gamma.doubles
        let ref = Naive.batchNorm(xd, s, gamma: gd, beta: beta.doubles)
        #expect(relError(y.array(s.count), ref.y) < 1e-5)
        #expect(relError(mean.array(s.c), ref.mean) < 1e-6)

        let dy = Buf(randomFloats(s.count, seed: 44)), dx = Buf(count: s.count)
        let dg = Buf(count: s.c), db = Buf(count: s.c)
        BatchNorm.backward(ctx, x: x.r, shape: s, gamma: gamma.r, mean: mean.r, invStd: inv.r, dy: dy.r,
                           dx: dx.m, dGamma: dg.m, dBeta: db.m)
        // dbeta = Σ dy, dgamma = Σ dy·xhat, dx = gamma·invstd·(dy - mean(dy) - xhat·mean(dy·xhat)).
        let (m, c) = (s.pixels, s.c)
        let dyd = dy.doubles
        let invd = (0..<c).map { 1 / (ref.varB[$0] + 1e-5).squareRoot() }
        var sumDy = [Double](repeating: 0, count: c), sumDyXhat = sumDy
        for r in 0..<m { for ch in 0..<c {
            let i = r * c + ch
            sumDy[ch] += dyd[i]
            sumDyXhat[ch] += dyd[i] * (xd[i] - ref.mean[ch]) * invd[ch]
        } }
        var dxRef = [Double](repeating: 0, count: s.count)
        for r in 0..<m { for ch in 0..<c {
            let i = r * c + ch
            let xhat = (xd[i] - ref.mean[ch]) * invd[ch]
            dxRef[i] = gd[ch] * invd[ch] * (dyd[i] - sumDy[ch] / Double(m) - xhat * sumDyXhat[ch] / Double(m))
        } }
        #expect(relError(dx.array(s.count), dxRef) < 1e-5)
        #expect(relError(db.array(c), sumDy) < 1e-5)
        #expect(relError(dg.array(c), sumDyXhat) < 1e-5)
    }

    @Test func cumulativeAverageMatchesPyTorchMomentumNone() {
        // momentum = nil: after k batches the running stats are the plain average of
        // the k batch means / unbiased variances.
        let s = Shape4(n: 2, h: 2, w: 3, c: 5)
        let rm = Buf(count: 5, value: 7), rv = Buf(count: 5, value: 7)
        let gamma = Buf(count: 5, value: 1), beta = Buf(count: 5), y = Buf(count: s.count)
        let mean = Buf(count: 5), inv = Buf(count: 5)
        var tracked = 0
        var sumMean = [Double](repeating: 0, count: 5), sumVar = sumMean
        for b in 0..<3 {
            let x = Buf(randomFloats(s.count, seed: 40 + UInt64(b)))
            let f = BatchNorm.averagingFactor(momentum: nil, batchesTracked: &tracked)
            BatchNorm.forwardTraining(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, y: y.m,
                                      saveMean: mean.m, saveInvStd: inv.m, running: .init(mean: rm.m, variance: rv.m, factor: f))
            let ref = Naive.batchNorm(x.doubles, s, gamma: gamma.doubles, beta: beta.doubles)
            for ch in 0..<5 { sumMean[ch] += ref.mean[ch]; sumVar[ch] += ref.varB[ch] * 12 / 11 }
        }
        #expect(tracked == 3)
        #expect(relError(rm.array(5), sumMean.map { $0 / 3 }) < 1e-5)
        #expect(relError(rv.array(5), sumVar.map { $0 / 3 }) < 1e-5)
    }

    @Test func batchNormInference() {
        let s = Shape4(n: 2, h: 3, w: 3, c: 11)
        let x = Buf(randomFloats(s.count, seed: 50))
        let gamma = Buf(randomFloats(16, seed: 51)), beta = Buf(randomFloats(16, seed: 52))
        let rm = Buf(randomFloats(16, seed: 53)), rv = Buf(randomFloats(16, seed: 54, range: 0.1...3))
        let y = Buf(count: s.count)
        BatchNorm.forwardInference(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, runningMean: rm.r, runningVar: rv.r, y: y.m)
        let ref = (0..<s.count).map { i -> Double in
            let ch = i % 11
            return Double(gamma.p[ch]) * (Double(x.p[i]) - Double(rm.p[ch])) / (Double(rv.p[ch]) + 1e-5).squareRoot() + Double(beta.p[ch])
        }
        #expect(relError(y.array(s.count), ref) < 1e-5)
    }

    /// The training fusion: forward `act(BN(x))` in one pass equals BN then the
    /// activation; the fused backward (activation gradient formed inside BN's reduction,
    /// from the recomputed BN output) equals the activation's backward then BN's, bit for
    /// bit, for dx, dGamma and dBeta (c = 11 and 19 exercise the vector tail; 16 none;
    /// 24 the AVX-512 loop's 8-lane block), with each vector ISA's kernels.
    @Test(arguments: Activation.allCases, KernelConvTests.isas)
    func batchNormTrainingFusedWithActivation(_ act: Activation, _ isa: VectorISA) {
        let ctx = ComputeContext(workers: 2, vectorISA: isa)
        for c in [11, 16, 19, 24] {
            let s = Shape4(n: 3, h: 5, w: 7, c: c)
            let x = Buf(randomFloats(s.count, seed: 80, range: -3...5))
            let gamma = Buf(randomFloats(c, seed: 81)), beta = Buf(randomFloats(c, seed: 82))
            let dz = Buf(randomFloats(s.count, seed: 83))
            let mean = Buf(count: c), inv = Buf(count: c)
            // Separate: y = BN(x), z = act(y); backward dy = act'(y)·dz, then BN's backward.
            let y = Buf(count: s.count), z = Buf(count: s.count)
            BatchNorm.forwardTraining(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, y: y.m, saveMean: mean.m, saveInvStd: inv.m)
            act.forward(ctx, x: y.r, y: z.m, count: s.count)
            let dy = Buf(count: s.count), dx = Buf(count: s.count)
            let dGamma = Buf([Float](repeating: 0.5, count: c)), dBeta = Buf([Float](repeating: -0.25, count: c))
            act.backward(ctx, x: y.r, dy: dz.r, dx: dy.m, count: s.count)
            BatchNorm.backward(ctx, x: x.r, shape: s, gamma: gamma.r, mean: mean.r, invStd: inv.r, dy: dy.r, dx: dx.m, dGamma: dGamma.m, dBeta: dBeta.m)
            // Fused.
            let zf = Buf(count: s.count), meanF = Buf(count: c), invF = Buf(count: c)
            BatchNorm.forwardTraining(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, y: zf.m, saveMean: meanF.m, saveInvStd: invF.m, activation: act)
            #expect(zf.array(s.count) == z.array(s.count), "forward \(act) \(isa) c=\(c)")
            let dzF = Buf(dz.array(s.count)), dxF = Buf(count: s.count)
            let dGammaF = Buf([Float](repeating: 0.5, count: c)), dBetaF = Buf([Float](repeating: -0.25, count: c))
            BatchNorm.backward(ctx, x: x.r, shape: s, gamma: gamma.r, mean: meanF.r, invStd: invF.r, dy: dzF.r, dx: dxF.m,
                               dGamma: dGammaF.m, dBeta: dBetaF.m, fused: .init(act, beta: beta.r))
            #expect(dxF.array(s.count) == dx.array(s.count), "dx \(act) c=\(c)")
            #expect(dGammaF.array(c) == dGamma.array(c) && dBetaF.array(c) == dBeta.array(c), "dGamma/dBeta \(act) c=\(c)")
        }
    }

    /// The evaluation fusion: BN with running statistics and an activation in one pass,
    /// in place, equals BN then the activation (c = 11 and 19 exercise the vector tail),
    /// with each vector ISA's kernels.
    @Test(arguments: Activation.allCases, KernelConvTests.isas)
    func batchNormInferenceFusedWithActivation(_ act: Activation, _ isa: VectorISA) {
        let ctx = ComputeContext(workers: 2, vectorISA: isa)
        for c in [11, 19, 24] {
            let s = Shape4(n: 2, h: 3, w: 5, c: c)
            let x = Buf(randomFloats(s.count, seed: 70, range: -4...4))
            let gamma = Buf(randomFloats(c, seed: 71)), beta = Buf(randomFloats(c, seed: 72))
            let rm = Buf(randomFloats(c, seed: 73)), rv = Buf(randomFloats(c, seed: 74, range: 0.1...3))
            let separate = Buf(count: s.count)
            BatchNorm.forwardInference(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, runningMean: rm.r, runningVar: rv.r, y: separate.m)
            act.forward(ctx, x: separate.r, y: separate.m, count: s.count)
            BatchNorm.forwardInference(ctx, x: x.r, shape: s, gamma: gamma.r, beta: beta.r, runningMean: rm.r, runningVar: rv.r, y: x.m, activation: act)
            #expect(x.array(s.count) == separate.array(s.count), "\(act) \(isa) c=\(c)")
        }
    }

    @Test(arguments: Activation.allCases)
    func activation(_ act: Activation) {
        // Odd count exercises the vector tail; values avoid the kinks by construction
        // only for the finite-difference check below.
        let count = 4099
        let xv = randomFloats(count, seed: 60, range: -6...6)
        let x = Buf(xv), y = Buf(count: count)
        act.forward(ctx, x: x.r, y: y.m, count: count)
        let ref = xv.map { Naive.act(act, Double($0)) }
        for i in 0..<count {
            let tol = 4 * Double(Float.ulpOfOne) * max(abs(ref[i]), 1e-3) + 1e-7
            #expect(abs(Double(y.p[i]) - ref[i]) <= tol, "\(act) at x = \(xv[i])")
        }
        let gv = randomFloats(count, seed: 61)
        let dy = Buf(gv), dx = Buf(count: count)
        act.backward(ctx, x: x.r, dy: dy.r, dx: dx.m, count: count)
        let dref = (0..<count).map { Double(gv[$0]) * Naive.actDerivative(act, Double(xv[$0])) }
        #expect(relError(dx.array(count), dref) < 1e-5)
        // Finite differences of the Double reference agree with its derivative away from kinks.
        let smooth = (0..<200).filter { i in [-3.0, 0, 3].allSatisfy { abs(Double(xv[i]) - $0) > 1e-2 } }
        let fd = finiteDifference(xv.map(Double.init), indices: smooth) { v in smooth.reduce(0) { $0 + Naive.act(act, v[$1]) } }
        #expect(relError(smooth.map { Float(Naive.actDerivative(act, Double(xv[$0]))) }, fd) < 1e-4)
    }

    @Test func sigmoidIsStableForLargeInputs() {
        let xv: [Float] = [-1e30, -1000, -90, -88, -20, 20, 88, 90, 1000, 1e30, .greatestFiniteMagnitude]
        let x = Buf(xv), y = Buf(count: xv.count), d = Buf(count: xv.count), ones = Buf(count: xv.count, value: 1)
        for act in [Activation.swish, .hswish, .hsigmoid] {
            act.forward(ctx, x: x.r, y: y.m, count: xv.count)
            act.backward(ctx, x: x.r, dy: ones.r, dx: d.m, count: xv.count)
            for i in xv.indices {
                #expect(y.p[i].isFinite && d.p[i].isFinite, "\(act)(\(xv[i])) = \(y.p[i]), d = \(d.p[i])")
            }
        }
        Activation.swish.forward(ctx, x: x.r, y: y.m, count: xv.count)
        #expect(abs(y.p[1]) < 1e-30 && y.p[8] == 1000 && y.p[5] > 19.99)
    }

    @Test func fastExpAccuracy() {
        var worst: Double = 0
        var g = SeededRandom(seed: 70)
        for _ in 0..<2000 {
            let v = SIMD8<Float>((0..<8).map { _ in -80 + 160 * g.uniformFloat() })
            let e = FastExp.expNegated8(v, plus: 0)
            for l in 0..<8 {
                let ref = Foundation.exp(-Double(v[l]))
                worst = max(worst, abs(Double(e[l]) - ref) / ref)
            }
        }
        #expect(worst < 3 * Double(Float.ulpOfOne))
    }
}
