import NASCore
import Testing

@Suite("Kernel layers: SE, pooling, linear, regularisation, resize")
struct KernelLayerTests {
    let ctx = ComputeContext(workers: 2)

    /// (n, h, w, c, mid, cMax, midMax)
    static let seCases: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 3, 3, 16, 8, 24, 8),
        (3, 2, 5, 13, 5, 13, 8),
    ]

    @Test(arguments: seCases)
    func squeezeExcite(_ cfg: (Int, Int, Int, Int, Int, Int, Int)) {
        let (n, h, w, c, mid, cMax, midMax) = cfg
        let s = Shape4(n: n, h: h, w: w, c: c)
        let x = Buf(randomFloats(s.count, seed: 80, range: -2...2))
        let wr = Buf(randomFloats(midMax * cMax, seed: 81)), br = Buf(randomFloats(midMax, seed: 82))
        let we = Buf(randomFloats(cMax * midMax, seed: 83)), be = Buf(randomFloats(cMax, seed: 84))
        let prm = SqueezeExcite.Parameters(reduceWeight: wr.r, reduceBias: br.r, expandWeight: we.r, expandBias: be.r,
                                           cMax: cMax, midMax: midMax)
        let saved = Buf(count: SqueezeExcite.savedCount(n: n, c: c, mid: mid)), y = Buf(count: s.count)
        SqueezeExcite.forward(ctx, x: x.r, shape: s, mid: mid, parameters: prm, saved: saved.m, y: y.m)
        func ref(_ xd: [Double], _ wrd: [Double], _ brd: [Double], _ wed: [Double], _ bed: [Double]) -> [Double] {
            Naive.se(xd, s, mid: mid, cMax: cMax, midMax: midMax, wr: wrd, br: brd, we: wed, be: bed)
        }
        let X = x.doubles, WR = wr.doubles, BR = br.doubles, WE = we.doubles, BE = be.doubles
        #expect(relError(y.array(s.count), ref(X, WR, BR, WE, BE)) < 1e-5)

        let rr = randomFloats(s.count, seed: 85), rd = rr.map(Double.init)
        let dy = Buf(rr), dx = Buf(count: s.count)
        let gwr = Buf(count: wr.p.count), gbr = Buf(count: midMax), gwe = Buf(count: we.p.count), gbe = Buf(count: cMax)
        SqueezeExcite.backward(ctx, x: x.r, shape: s, mid: mid, parameters: prm, saved: saved.r, dy: dy.r, dx: dx.m,
                               gradients: .init(reduceWeight: gwr.m, reduceBias: gbr.m, expandWeight: gwe.m, expandBias: gbe.m))
        // h = 1e-3 keeps the perturbation from crossing ReLU / h-sigmoid kinks in practice.
        let xi = sampleIndices(s.count, limit: 40)
        #expect(relError(xi.map { dx.p[$0] }, finiteDifference(X, indices: xi, h: 1e-3) { dot(ref($0, WR, BR, WE, BE), rd) }) < 2e-3)
        let wi = sampleIndices(WR.count, limit: 40)
        #expect(relError(wi.map { gwr.p[$0] }, finiteDifference(WR, indices: wi, h: 1e-3) { dot(ref(X, $0, BR, WE, BE), rd) }) < 2e-3)
        #expect(relError(gbr.array(midMax), finiteDifference(BR, indices: Array(0..<midMax), h: 1e-3) { dot(ref(X, WR, $0, WE, BE), rd) }) < 2e-3)
        let ei = sampleIndices(WE.count, limit: 40)
        #expect(relError(ei.map { gwe.p[$0] }, finiteDifference(WE, indices: ei, h: 1e-3) { dot(ref(X, WR, BR, $0, BE), rd) }) < 2e-3)
        #expect(relError(gbe.array(cMax), finiteDifference(BE, indices: Array(0..<cMax), h: 1e-3) { dot(ref(X, WR, BR, WE, $0), rd) }) < 2e-3)
    }

    /// (n, h, w, c): even and odd sizes (odd width pads by 1; even widths take the
    /// unpadded loop, with and without a channel tail, odd height included).
    @Test(arguments: [(2, 4, 6, 8), (1, 7, 7, 13), (2, 5, 5, 3), (1, 1, 1, 16), (1, 3, 4, 9), (2, 6, 8, 16), (1, 5, 2, 27)])
    func shortcutAvgPool(_ cfg: (Int, Int, Int, Int)) {
        let (n, h, w, c) = cfg
        let s = Shape4(n: n, h: h, w: w, c: c)
        let ys = ShortcutAvgPool.outputShape(s)
        let x = Buf(randomFloats(s.count, seed: 90)), y = Buf(count: ys.count)
        ShortcutAvgPool.forward(ctx, x: x.r, shape: s, y: y.m)
        let p = w % 2
        let ref = Naive.avgPool2(x.doubles, s, pad: p)
        #expect(ref.count == ys.count)
        #expect(relError(y.array(ys.count), ref) < 1e-6)
        let rr = randomFloats(ys.count, seed: 91), rd = rr.map(Double.init)
        let dx = Buf(count: s.count, value: 5), dy = Buf(rr)
        ShortcutAvgPool.backward(ctx, dy: dy.r, shape: s, dx: dx.m)
        let fd = finiteDifference(x.doubles, indices: Array(0..<s.count)) { dot(Naive.avgPool2($0, s, pad: p), rd) }
        #expect(relError(dx.array(s.count), fd) < 1e-6)
    }

    @Test func globalAvgPoolAndLinear() {
        let s = Shape4(n: 3, h: 3, w: 5, c: 12)
        let x = Buf(randomFloats(s.count, seed: 100)), pooled = Buf(count: s.n * s.c)
        GlobalAvgPool.forward(ctx, x: x.r, shape: s, y: pooled.m)
        #expect(relError(pooled.array(36), Naive.globalAvg(x.doubles, s)) < 1e-6)
        let rr = randomFloats(36, seed: 101)
        let dx = Buf(count: s.count), dy = Buf(rr)
        GlobalAvgPool.backward(ctx, dy: dy.r, shape: s, dx: dx.m)
        let fd = finiteDifference(x.doubles, indices: Array(0..<s.count)) { dot(Naive.globalAvg($0, s), rr.map(Double.init)) }
        #expect(relError(dx.array(s.count), fd) < 1e-6)

        // Linear with input-feature prefix slicing: 10 of inMax 16 features, 7 outputs.
        let inF = 10, inMax = 16, outF = 7
        let xl = Buf(randomFloats(3 * inF, seed: 102)), wl = Buf(randomFloats(outF * inMax, seed: 103)), bl = Buf(randomFloats(outF, seed: 104))
        let yl = Buf(count: 3 * outF)
        Linear.forward(ctx, x: xl.r, n: 3, inFeatures: inF, weight: wl.r, outFeatures: outF, inMax: inMax, bias: bl.r, y: yl.m)
        let ref = Naive.linear(xl.doubles, n: 3, cin: inF, wl.doubles, inMax: inMax, cout: outF, bl.doubles)
        #expect(relError(yl.array(21), ref) < 1e-6)
        let dyl = randomFloats(21, seed: 105), dyd = dyl.map(Double.init)
        let dxl = Buf(count: 3 * inF), dwl = Buf(count: outF * inMax), dbl = Buf(count: outF), dyb = Buf(dyl)
        Linear.backward(ctx, x: xl.r, n: 3, inFeatures: inF, weight: wl.r, outFeatures: outF, inMax: inMax,
                        dy: dyb.r, dx: dxl.m, dWeight: dwl.m, dBias: dbl.m)
        let fdW = finiteDifference(wl.doubles, indices: Array(0..<(outF * inMax))) {
            dot(Naive.linear(xl.doubles, n: 3, cin: inF, $0, inMax: inMax, cout: outF, bl.doubles), dyd)
        }
        #expect(relError(dwl.array(outF * inMax), fdW) < 1e-5)
        let fdX = finiteDifference(xl.doubles, indices: Array(0..<(3 * inF))) {
            dot(Naive.linear($0, n: 3, cin: inF, wl.doubles, inMax: inMax, cout: outF, bl.doubles), dyd)
        }
        #expect(relError(dxl.array(3 * inF), fdX) < 1e-5)
        #expect(relError(dbl.array(outF), (0..<outF).map { o in (0..<3).reduce(0.0) { $0 + dyd[$1 * outF + o] } }) < 1e-6)
    }

    @Test func dropoutReplaysFromSeedAndScales() {
        let count = 20000, p: Float = 0.2
        let x = Buf(count: count, value: 1), y = Buf(count: count), mask = Buf(count: count)
        var g = SeededRandom(seed: 110)
        Dropout.forward(x: x.r, y: y.m, mask: mask.m, count: count, p: p, rng: &g)
        let kept = (0..<count).filter { y.p[$0] != 0 }
        #expect(abs(Double(kept.count) / Double(count) - 0.8) < 0.02)
        #expect(kept.allSatisfy { abs(y.p[$0] - 1.25) < 1e-6 })
        let y2 = Buf(count: count), mask2 = Buf(count: count)
        var g2 = SeededRandom(seed: 110)
        Dropout.forward(x: x.r, y: y2.m, mask: mask2.m, count: count, p: p, rng: &g2)
        #expect(y.array(count) == y2.array(count))  // same seed, same draws: bit-identical by construction
        let dx = Buf(count: count), twos = Buf(count: count, value: 2)
        Dropout.backward(dy: twos.r, mask: mask.r, dx: dx.m, count: count)
        #expect((0..<count).allSatisfy { dx.p[$0] == 2 * mask.p[$0] })
    }

    @Test func dropConnectFollowsOfficialFormula() {
        let s = Shape4(n: 64, h: 2, w: 2, c: 3), p: Float = 0.3, keep: Float = 0.7
        let x = Buf(randomFloats(s.count, seed: 120)), y = Buf(count: s.count), f = Buf(count: s.n)
        var g = SeededRandom(seed: 121)
        DropConnect.forward(ctx, x: x.r, shape: s, y: y.m, factors: f.m, p: p, rng: &g)
        var replay = SeededRandom(seed: 121)
        for n in 0..<s.n {
            let binary = (keep + replay.uniformFloat()).rounded(.down)
            #expect(f.p[n] == binary / keep)
            for i in (n * 12)..<((n + 1) * 12) { #expect(y.p[i] == x.p[i] / keep * binary) }
        }
        let dx = Buf(count: s.count), ones = Buf(count: s.count, value: 1)
        DropConnect.backward(ctx, dy: ones.r, shape: s, factors: f.r, dx: dx.m)
        #expect((0..<s.count).allSatisfy { dx.p[$0] == f.p[$0 / 12] })
    }

    /// (n, h, w, c, oh, ow): down, up, odd ratios, channel tails.
    @Test(arguments: [(1, 8, 8, 3, 5, 5), (2, 5, 7, 16, 9, 4), (1, 6, 6, 11, 6, 6), (1, 3, 4, 8, 13, 1)])
    func bicubicMatchesReference(_ cfg: (Int, Int, Int, Int, Int, Int)) {
        let (n, h, w, c, oh, ow) = cfg
        let s = Shape4(n: n, h: h, w: w, c: c)
        let x = Buf(randomFloats(s.count, seed: 130)), y = Buf(count: n * oh * ow * c)
        Bicubic.forward(ctx, x: x.r, shape: s, outHeight: oh, outWidth: ow, y: y.m)
        #expect(relError(y.array(n * oh * ow * c), Naive.bicubic(x.doubles, s, oh: oh, ow: ow)) < 1e-5)
        if oh == h && ow == w { #expect(relError(y.array(s.count), x.doubles) < 1e-6) }
    }

    @Test func bicubicPreservesConstants() {
        // The four weights sum to 1 for every phase (A = -0.75 reproduces constants,
        // not linear ramps: that needs A = -0.5), and border clamping keeps edges constant.
        let s = Shape4(n: 1, h: 5, w: 7, c: 3)
        let x = Buf(count: s.count, value: 0.375), y = Buf(count: 11 * 4 * 3)
        Bicubic.forward(ctx, x: x.r, shape: s, outHeight: 11, outWidth: 4, y: y.m)
        #expect(relError(y.array(11 * 4 * 3), [Double](repeating: 0.375, count: 11 * 4 * 3)) < 1e-6)
    }
}
