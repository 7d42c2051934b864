@testable import NASCore
import Testing

/// Convolution kernels against naive Double references, and their backward passes
/// against central finite differences of the naive forward (loss `L = Σ y · R`).
@Suite("Kernel convolutions")
struct KernelConvTests {
    let ctx = ComputeContext(workers: 2)

    /// (n, h, w, cin, cout, inMax, outMax, bias)
    static let pointwiseCases: [(Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (2, 3, 5, 7, 5, 9, 8, false),
        (1, 1, 1, 13, 6, 13, 10, true),
        (2, 6, 8, 64, 48, 72, 64, true),   // large enough for the parallel GEMM split
        (3, 2, 3, 24, 40, 24, 40, false),
        // 20 input channels: with AVX-512 the input and weight gradients run Gemm's narrow
        // kernels (the split GEMM; output tiles in pointwiseNarrowTilesMatchNaive).
        (3, 11, 11, 20, 36, 24, 40, true),
        // 12 input channels: the narrow kernels' masked 16-lane block.
        (3, 9, 9, 12, 11, 16, 12, false),
    ]

    /// A map large enough for the input gradient's output tiles, 24 input channels: with
    /// AVX-512 the narrow kernels (tiles of dx, the weight gradient split along the pixels),
    /// with AVX2 OpenBLAS, each against the naive gradients.
    @Test func pointwiseNarrowTilesMatchNaive() {
        let xs = Shape4(n: 4, h: 56, w: 56, c: 24), cout = 48, m = xs.pixels, cin = xs.c
        #expect(m >= PointwiseConv.outputTileRows(cout: cin) * 2)
        let sl = ConvWeightSlice(outMax: 56, inMax: 32, cout: cout, cin: cin)
        let xv = randomFloats(xs.count, seed: 41), wv = randomFloats(sl.fullCount, seed: 42)
        let dyv = randomFloats(m * cout, seed: 43)
        var dxRef = [Double](repeating: 0, count: xs.count), dwRef = [Double](repeating: 0, count: cout * cin)
        for p in 0..<m {
            for j in 0..<cout {
                let g = Double(dyv[p * cout + j])
                for i in 0..<cin {
                    dxRef[p * cin + i] += g * Double(wv[j * sl.inMax + i])
                    dwRef[j * cin + i] += g * Double(xv[p * cin + i])
                }
            }
        }
        let x = Buf(xv), wt = Buf(wv), dy = Buf(dyv)
        for isa in Self.isas {
            let dx = Buf(count: xs.count, value: .nan), dw = Buf(count: sl.fullCount, value: 0)
            PointwiseConv.backward(ComputeContext(workers: 2, vectorISA: isa), x: x.r, shape: xs, weight: wt.r, slice: sl,
                                   dy: dy.r, dx: dx.m, dWeight: dw.m)
            #expect(relError(dx.array(xs.count), dxRef) < 1e-5, "\(isa) dx")
            let dwUsed = (0..<cout).flatMap { j in (0..<cin).map { dw.p[j * sl.inMax + $0] } }
            #expect(relError(dwUsed, dwRef) < 1e-5, "\(isa) dW")
        }
    }

    /// A forward pass of 20 output channels on a map large enough for output tiles: the
    /// narrow kernels on the transposed weight with either vector set, against the naive
    /// product, and the same bits from both sets.
    @Test func pointwiseNarrowForwardMatchesNaive() {
        let xs = Shape4(n: 5, h: 56, w: 56, c: 40), cout = 20, m = xs.pixels, cin = xs.c
        #expect(m >= PointwiseConv.outputTileRows(cout: cout) * 2)
        let sl = ConvWeightSlice(outMax: 24, inMax: 48, cout: cout, cin: cin)
        let x = Buf(randomFloats(xs.count, seed: 44)), wt = Buf(randomFloats(sl.fullCount, seed: 45)), b = Buf(randomFloats(24, seed: 46))
        var yRef = Naive.conv(x.doubles, xs, wt.doubles, sl, stride: 1)
        Naive.addBias(&yRef, b.doubles, c: cout)
        var results: [[Float]] = []
        for isa in Self.isas {
            #expect(Gemm.isNarrow(isa, transA: false, transB: false, n: cout, beta: 1))
            let y = Buf(count: m * cout, value: .nan)
            PointwiseConv.forward(ComputeContext(workers: 2, vectorISA: isa), x: x.r, shape: xs, weight: wt.r, slice: sl, bias: b.r, y: y.m)
            results.append(y.array(m * cout))
            #expect(relError(results.last!, yRef) < 1e-5, "\(isa)")
        }
        #expect(results.dropFirst().allSatisfy { $0.map(\.bitPattern) == results[0].map(\.bitPattern) })
    }

    @Test(arguments: pointwiseCases)
    func pointwise(_ cfg: (Int, Int, Int, Int, Int, Int, Int, Bool)) {
        let (n, h, w, cin, cout, inMax, outMax, hasBias) = cfg
        let xs = Shape4(n: n, h: h, w: w, c: cin)
        let sl = ConvWeightSlice(outMax: outMax, inMax: inMax, cout: cout, cin: cin)
        let x = Buf(randomFloats(xs.count, seed: 1)), wt = Buf(randomFloats(sl.fullCount, seed: 2))
        let b = Buf(randomFloats(outMax, seed: 3))
        let y = Buf(count: xs.pixels * cout)
        PointwiseConv.forward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, bias: hasBias ? b.r : nil, y: y.m)
        func ref(_ xd: [Double], _ wd: [Double], _ bd: [Double]) -> [Double] {
            var r = Naive.conv(xd, xs, wd, sl, stride: 1)
            if hasBias { Naive.addBias(&r, bd, c: cout) }
            return r
        }
        let yRef = ref(x.doubles, wt.doubles, b.doubles)
        #expect(relError(y.array(yRef.count), yRef) < 1e-5)

        let rr = randomFloats(yRef.count, seed: 4), rd = rr.map(Double.init)
        let dy = Buf(rr), dx = Buf(count: xs.count)
        let g0 = randomFloats(sl.fullCount, seed: 5), dw = Buf(g0)
        let db = Buf(count: outMax, value: 0.5)
        PointwiseConv.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, dy: dy.r, dx: dx.m, dWeight: dw.m,
                               dBias: hasBias ? db.m : nil)
        let xi = sampleIndices(xs.count)
        let fdX = finiteDifference(x.doubles, indices: xi) { dot(ref($0, wt.doubles, b.doubles), rd) }
        #expect(relError(xi.map { dx.p[$0] }, fdX) < 1e-3)
        let wi = sampleIndices(sl.fullCount, limit: 80)
        let fdW = finiteDifference(wt.doubles, indices: wi) { dot(ref(x.doubles, $0, b.doubles), rd) }
        // dW accumulates on top of g0; entries outside the slice stay g0.
        #expect(relError(wi.map { dw.p[$0] - g0[$0] }, fdW) < 1e-3)
        if hasBias {
            let fdB = finiteDifference(b.doubles, indices: Array(0..<outMax)) { dot(ref(x.doubles, wt.doubles, $0), rd) }
            #expect(relError((0..<outMax).map { db.p[$0] - 0.5 }, fdB) < 1e-3)
        }
    }

    /// (n, h, w, cin, cout, k, kMax, stride). Forward takes the direct loop where
    /// `k*k*cin <= Conv2D.directTaps` (32) and im2col + GEMM above it (the 36- and 50-tap
    /// cases); backward is im2col + GEMM for all.
    static let convCases: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 7, 6, 3, 8, 3, 3, 2),      // direct: one vector, single pixels only
        (1, 5, 5, 4, 6, 3, 5, 1),      // 36 taps: GEMM
        (3, 9, 9, 3, 16, 3, 3, 2),     // direct: two vectors, single pixels
        (1, 4, 3, 2, 3, 5, 5, 1),      // 50 taps: GEMM
        (2, 20, 19, 3, 24, 3, 3, 2),   // direct: three vectors, two 4-pixel steps + 2
        (1, 17, 30, 3, 20, 3, 5, 2),   // direct: 8 + 8 + a 4-channel rest
        (2, 9, 26, 3, 32, 3, 3, 1),    // direct, stride 1: a 24-channel group, then an 8-channel one
        (1, 8, 14, 3, 16, 3, 3, 2),    // direct: one 6-pixel step + 1
        (1, 6, 7, 1, 5, 5, 5, 1),      // direct: 25 taps, fewer channels than a vector
        (1, 11, 40, 2, 8, 3, 3, 1),    // direct: five 8-pixel steps
    ]

    @Test(arguments: convCases)
    func conv2D(_ cfg: (Int, Int, Int, Int, Int, Int, Int, Int)) {
        let (n, h, w, cin, cout, k, kMax, stride) = cfg
        let xs = Shape4(n: n, h: h, w: w, c: cin)
        let sl = ConvWeightSlice(outMax: cout + 2, inMax: cin + 1, kMax: kMax, cout: cout, cin: cin, k: k)
        let ys = Conv2D.outputShape(xs, slice: sl, stride: stride)
        let x = Buf(randomFloats(xs.count, seed: 11)), wt = Buf(randomFloats(sl.fullCount, seed: 12))
        let y = Buf(count: ys.count)
        Conv2D.forward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, y: y.m)
        let yRef = Naive.conv(x.doubles, xs, wt.doubles, sl, stride: stride)
        #expect(yRef.count == ys.count)
        #expect(relError(y.array(ys.count), yRef) < 1e-5)

        let rr = randomFloats(ys.count, seed: 13), rd = rr.map(Double.init)
        let dy = Buf(rr), dx = Buf(count: xs.count, value: 9)
        let g0 = randomFloats(sl.fullCount, seed: 14), dw = Buf(g0)
        Conv2D.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, dy: dy.r, dx: dx.m, dWeight: dw.m)
        let xi = sampleIndices(xs.count)
        let fdX = finiteDifference(x.doubles, indices: xi) { dot(Naive.conv($0, xs, wt.doubles, sl, stride: stride), rd) }
        #expect(relError(xi.map { dx.p[$0] }, fdX) < 1e-3)
        let wi = sampleIndices(sl.fullCount, limit: 80)
        let fdW = finiteDifference(wt.doubles, indices: wi) { dot(Naive.conv(x.doubles, xs, $0, sl, stride: stride), rd) }
        #expect(relError(wi.map { dw.p[$0] - g0[$0] }, fdW) < 1e-3)
    }

    /// (n, h, w, c, k, kMax, stride)
    static let depthwiseCases: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 7, 9, 16, 3, 7, 1),
        (2, 8, 8, 13, 5, 5, 2),
        (1, 9, 11, 24, 7, 7, 1),
        (1, 2, 2, 8, 7, 7, 2),     // kernel wider than the map
        (3, 5, 6, 40, 3, 5, 2),
        (1, 6, 13, 32, 5, 7, 1),   // one sample for two workers: its bordered rows split over them
        (2, 9, 12, 20, 3, 5, 1),   // c % 8 != 0: the unbordered row path, edge columns, interior, a 4-channel tail
        // c % 8 == 0, the kernel no wider than the map, a sample per worker: the
        // zero-bordered path (with AVX-512: 16-channel blocks and an 8-channel tail).
        (4, 4, 4, 32, 3, 5, 1),    // 4x4 maps: one four-pixel step per row
        (2, 8, 7, 16, 5, 7, 1),    // four-pixel step plus three single pixels
        (3, 7, 8, 24, 3, 3, 2),    // stride 2, odd height, 16 + 8 channels
        (2, 13, 11, 40, 5, 7, 1),  // wider than 8: 32 + 8 channels, 11 = 2 steps + 3
        (2, 12, 12, 48, 7, 7, 2),  // k7 stride 2, 48 = 3 x 16 channels
        (2, 10, 10, 8, 3, 3, 1),   // only the 8-channel tail
        // AVX-512's eight-pixel steps (k 3, 5, 7; stride 1, 2), then four-pixel and single steps.
        (2, 12, 20, 16, 3, 3, 1),  // 20 = 2 x 8 + 4
        (2, 17, 17, 32, 3, 5, 2),  // 9 = 8 + 1
        (2, 20, 20, 24, 5, 5, 2),  // 10 = 8 + 2, 16 + 8 channels
        (1, 9, 19, 16, 7, 7, 1),   // 19 = 2 x 8 + 3
        (2, 16, 29, 16, 7, 7, 2),  // 15 = 8 + 4 + 3
        (2, 9, 23, 16, 5, 7, 1),   // 23 = 2 x 8 + 4 + 3
        // Stride 2 through the gathered dx: columns of each parity four at a time, then singles.
        (3, 11, 13, 24, 5, 5, 2),  // odd width: 7 even, 6 odd columns; 16 + 8 channels; 3 samples on 2 workers
        (2, 3, 3, 8, 3, 3, 2),     // the kernel as wide as the map
        (2, 15, 18, 16, 7, 7, 2),  // k7: a border of 2 in dy
    ]

    /// The ISAs this CPU runs (AVX2 always; AVX-512 where it has it).
    static let isas = VectorISA.allCases.filter(\.isSupported)

    @Test(arguments: depthwiseCases)
    func depthwise(_ cfg: (Int, Int, Int, Int, Int, Int, Int)) {
        let (n, h, w, c, k, kMax, stride) = cfg
        let xs = Shape4(n: n, h: h, w: w, c: c)
        let sl = DepthwiseConv.slice(cMax: c + 8, kMax: kMax, c: c, k: k)
        let ys = DepthwiseConv.outputShape(xs, kernel: k, stride: stride)
        let x = Buf(randomFloats(xs.count, seed: 21)), wt = Buf(randomFloats(sl.fullCount, seed: 22))
        let y = Buf(count: ys.count)
        DepthwiseConv.forward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, y: y.m)
        let yRef = Naive.conv(x.doubles, xs, wt.doubles, sl, stride: stride, depthwise: true)
        #expect(relError(y.array(ys.count), yRef) < 1e-5)
        // Every ISA's forward: the same sums in the same order, so the same bits.
        for isa in Self.isas {
            let other = Buf(count: ys.count, value: .nan)
            DepthwiseConv.forward(ComputeContext(workers: 2, vectorISA: isa), x: x.r, shape: xs, weight: wt.r, slice: sl,
                                  stride: stride, y: other.m)
            let d = ChannelAffineTests.difference(other.array(ys.count), y.array(ys.count))
            #expect(d.count == 0, "\(isa) \(cfg): \(d.count) of \(ys.count) differ, max \(d.relative)")
        }

        let rr = randomFloats(ys.count, seed: 23), rd = rr.map(Double.init)
        let dy = Buf(rr), dx = Buf(count: xs.count, value: 9)
        let g0 = randomFloats(sl.fullCount, seed: 24), dw = Buf(g0)
        DepthwiseConv.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, dy: dy.r, dx: dx.m, dWeight: dw.m)
        // Every ISA's backward: each lane sums in the same order, so the same bits.
        for isa in Self.isas {
            let dx2 = Buf(count: xs.count, value: .nan), dw2 = Buf(g0)
            DepthwiseConv.backward(ComputeContext(workers: 2, vectorISA: isa), x: x.r, shape: xs, weight: wt.r, slice: sl,
                                   stride: stride, dy: dy.r, dx: dx2.m, dWeight: dw2.m)
            let ddx = ChannelAffineTests.difference(dx2.array(xs.count), dx.array(xs.count))
            let ddw = ChannelAffineTests.difference(dw2.array(sl.fullCount), dw.array(sl.fullCount))
            #expect(ddx.count == 0 && ddw.count == 0, "\(isa) \(cfg) backward: dx \(ddx), dW \(ddw)")
        }
        // Every element against the naive adjoint.
        let ref = Naive.depthwiseBackward(x.doubles, xs, wt.doubles, sl, stride: stride, dy: rd)
        #expect(relError(dx.array(xs.count), ref.dx) < 1e-5, "\(cfg) dx")
        var dwUsed = [Float](), dwRef = [Double]()
        for ch in 0..<c { for kh in 0..<k { for kw in 0..<k {
            dwUsed.append(dw.p[sl.index(ch, 0, kh, kw)] - g0[sl.index(ch, 0, kh, kw)])
            dwRef.append(ref.dw[(ch * k + kh) * k + kw])
        } } }
        #expect(relError(dwUsed, dwRef) < 1e-5, "\(cfg) dW")
        let xi = sampleIndices(xs.count)
        let fdX = finiteDifference(x.doubles, indices: xi) {
            dot(Naive.conv($0, xs, wt.doubles, sl, stride: stride, depthwise: true), rd)
        }
        #expect(relError(xi.map { dx.p[$0] }, fdX) < 1e-3)
        let wi = sampleIndices(sl.fullCount, limit: 80)
        let fdW = finiteDifference(wt.doubles, indices: wi) {
            dot(Naive.conv(x.doubles, xs, $0, sl, stride: stride, depthwise: true), rd)
        }
        #expect(relError(wi.map { dw.p[$0] - g0[$0] }, fdW) < 1e-3)
    }

    /// Samples whose bordered copy and output exceed `streamsRows`'s budget copy their
    /// rows one by one just before use: every output and gradient element against the
    /// naive references, in every ISA, at stride 1 and 2.
    @Test(arguments: [(2, 32, 32, 144, 3, 1), (2, 48, 48, 96, 5, 2), (3, 36, 45, 128, 7, 2)])
    func depthwiseStreamingRows(_ cfg: (Int, Int, Int, Int, Int, Int)) {
        let (n, h, w, c, k, stride) = cfg
        let xs = Shape4(n: n, h: h, w: w, c: c), p = k / 2
        let ys = DepthwiseConv.outputShape(xs, kernel: k, stride: stride)
        // The forward's test (output ys) implies the backward's (output xs).
        #expect(DepthwiseConv.streamsRows(bordered: (h + 2 * p) * ((w + 2 * p) * c + 16), output: ys.sampleCount))
        let sl = DepthwiseConv.slice(cMax: c, kMax: k, c: c, k: k)
        let x = Buf(randomFloats(xs.count, seed: 31)), wt = Buf(randomFloats(sl.fullCount, seed: 32))
        let rd = randomFloats(ys.count, seed: 33).map(Double.init), dy = Buf(rd.map(Float.init))
        let yRef = Naive.conv(x.doubles, xs, wt.doubles, sl, stride: stride, depthwise: true)
        let ref = Naive.depthwiseBackward(x.doubles, xs, wt.doubles, sl, stride: stride, dy: rd)
        for isa in Self.isas {
            let ctx = ComputeContext(workers: 2, vectorISA: isa)
            let y = Buf(count: ys.count, value: .nan)
            DepthwiseConv.forward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, y: y.m)
            #expect(relError(y.array(ys.count), yRef) < 1e-5, "\(isa) \(cfg) y")
            let dx = Buf(count: xs.count, value: .nan), dw = Buf(count: sl.fullCount, value: 0)
            DepthwiseConv.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: stride, dy: dy.r, dx: dx.m, dWeight: dw.m)
            #expect(relError(dx.array(xs.count), ref.dx) < 1e-5, "\(isa) \(cfg) dx")
            var dwUsed = [Float](), dwRef = [Double]()
            for ch in 0..<c { for kh in 0..<k { for kw in 0..<k {
                dwUsed.append(dw.p[sl.index(ch, 0, kh, kw)])
                dwRef.append(ref.dw[(ch * k + kh) * k + kw])
            } } }
            #expect(relError(dwUsed, dwRef) < 1e-5, "\(isa) \(cfg) dW")
        }
    }

    @Test func outputGeometryMatchesPyTorch() {
        // floor((H + 2p - k) / s) + 1 with p = k / 2.
        #expect(ConvGeometry.sameOutput(Shape4(n: 1, h: 7, w: 8, c: 1), kernel: 3, stride: 2, cout: 1) == Shape4(n: 1, h: 4, w: 4, c: 1))
        #expect(ConvGeometry.sameOutput(Shape4(n: 1, h: 2, w: 2, c: 1), kernel: 7, stride: 2, cout: 1) == Shape4(n: 1, h: 1, w: 1, c: 1))
        #expect(ConvGeometry.sameOutput(Shape4(n: 1, h: 5, w: 5, c: 1), kernel: 5, stride: 1, cout: 1) == Shape4(n: 1, h: 5, w: 5, c: 1))
    }
}
