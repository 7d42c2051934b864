import Foundation
import Testing
import NASCore

/// The evaluation-mode BatchNorm fused into the convolution before it (`ChannelAffine`
/// as a kernel's epilogue) against the separate passes: convolution, then
/// `BatchNorm.forwardInference` with the activation, on every path of every kernel: the
/// 1x1 convolution's tiled path (enough rows for a tile per worker) and its whole-GEMM
/// path (few rows), the depthwise row path and its zero-bordered path (samples or rows split), the
/// stem. Depthwise and stem are bit-identical (the same arithmetic in the same order);
/// the tiled 1x1 path calls OpenBLAS on tiles of rows instead of one block per worker,
/// and OpenBLAS's summation order depends on the block (measured: up to 2.2e-6 of the
/// output's scale, ~2,000-167,000 elements of 40,000-2,000,000 differing), so there
/// the bound is 1e-5 of the scale (the whole-GEMM path stays bit-identical, and so does
/// the tiled path of 9-24 output channels, whose narrow kernels sum every element in one
/// order whatever the tile).
@Suite struct ChannelAffineTests {
    /// Elements that differ in any bit, and the largest difference relative to max |b|
    /// (a short message instead of two whole arrays).
    static func difference(_ a: [Float], _ b: [Float]) -> (count: Int, relative: Double) {
        var n = 0, d = 0.0, scale = 1e-30
        for (x, y) in zip(a, b) {
            if x.bitPattern != y.bitPattern { n += 1 }
            d = max(d, abs(Double(x) - Double(y)))
            scale = max(scale, abs(Double(y)))
        }
        return (n + abs(a.count - b.count), d / scale)
    }

    let ctx = ComputeContext(workers: 2)

    struct Normalization {
        let gamma: Buf, beta: Buf, mean: Buf, variance: Buf, c: Int
        init(c: Int, seed: UInt64) {
            gamma = Buf(randomFloats(c, seed: seed, range: 0.2...2))
            beta = Buf(randomFloats(c, seed: seed + 1))
            mean = Buf(randomFloats(c, seed: seed + 2))
            variance = Buf(randomFloats(c, seed: seed + 3, range: 0.05...3))
            self.c = c
        }
        func affine(_ a: Activation) -> ChannelAffine {
            ChannelAffine(batchNormGamma: gamma.r, beta: beta.r, runningMean: mean.r, runningVar: variance.r, channels: c, activation: a)
        }
        /// The separate pass, in place.
        func apply(_ ctx: ComputeContext, _ y: Buf, _ s: Shape4, _ a: Activation) {
            BatchNorm.forwardInference(ctx, x: y.r, shape: s, gamma: gamma.r, beta: beta.r, runningMean: mean.r,
                                       runningVar: variance.r, y: y.m, activation: a)
        }
    }

    /// Runs `conv` (output of shape `ys` into the buffer, with the epilogue given or none)
    /// once plain, followed by the separate BN pass, and once with the BN as its epilogue;
    /// the difference of the two results.
    func fusedAgainstSeparate(_ ys: Shape4, _ bn: Normalization, _ act: Activation,
                              _ conv: (ChannelAffine?, Buf) -> Void) -> (count: Int, relative: Double) {
        let separate = Buf(count: ys.count), fused = Buf(count: ys.count, value: .nan)
        conv(nil, separate)
        bn.apply(ctx, separate, ys, act)
        conv(bn.affine(act), fused)
        return Self.difference(fused.array(ys.count), separate.array(ys.count))
    }

    @Test(arguments: Activation.allCases, KernelConvTests.isas)
    func pointwise(_ act: Activation, _ isa: VectorISA) {
        let convContext = ComputeContext(workers: 2, vectorISA: isa)
        // (pixels, cin, cout, bias): the tiled path for 2 workers needs 2 tiles of rows
        // (a tile is 131,072 / cout rows, rounded to 16, in 32...8192), the others take the
        // whole-GEMM path; 19 and 1000 channels exercise the vector tail, 1000 the smallest
        // tile, 16,384 x 19 the largest, with a partial last tile.
        for (m, cin, cout, bias) in [(16_400, 24, 19, false), (4096, 40, 144, false), (2048, 72, 1000, true), (40, 64, 96, false),
                                     (12_288, 8, 24, true), (4096, 16, 24, false)] {
            let xs = Shape4(n: 1, h: 1, w: m, c: cin)
            let sl = ConvWeightSlice(outMax: cout + 3, inMax: cin + 5, cout: cout, cin: cin)
            let x = Buf(randomFloats(xs.count, seed: 1, range: -2...2)), w = Buf(randomFloats(sl.fullCount, seed: 2))
            let b = Buf(randomFloats(cout, seed: 3))
            let d = fusedAgainstSeparate(xs.with(c: cout), Normalization(c: cout, seed: 4), act) { e, y in
                PointwiseConv.forward(convContext, x: x.r, shape: xs, weight: w.r, slice: sl, bias: bias ? b.r : nil, epilogue: e, y: y.m)
            }
            let tile = min(8192, max(32, 131_072 / cout / 16 * 16))  // PointwiseConv.outputTileRows
            let tiled = m >= 2 * tile, narrow = (9...24).contains(cout)
            #expect(tiled && !narrow ? d.relative <= 1e-5 : d.count == 0, "\(act) \(isa) m=\(m) cin=\(cin) cout=\(cout) bias=\(bias): \(d.count) differ, max \(d.relative)")
        }
    }

    @Test(arguments: Activation.allCases, KernelConvTests.isas)
    func depthwise(_ act: Activation, _ isa: VectorISA) {
        let convContext = ComputeContext(workers: 2, vectorISA: isa)
        // c % 8 == 0 takes the zero-bordered path (one sample: its rows split over the
        // workers; three: samples split); c = 20 the unbordered row path with a channel
        // tail; 24 and 40 have an 8-channel block after 16-channel ones.
        for (n, hw, c, k, stride) in [(1, 16, 24, 3, 1), (3, 16, 20, 5, 2), (3, 16, 40, 5, 1), (3, 8, 32, 3, 1), (3, 8, 16, 5, 2),
                                      (3, 4, 48, 3, 1), (3, 12, 24, 3, 2)] {
            let xs = Shape4(n: n, h: hw, w: hw, c: c)
            let sl = DepthwiseConv.slice(cMax: c + 8, kMax: 7, c: c, k: k)
            let ys = DepthwiseConv.outputShape(xs, kernel: k, stride: stride)
            let x = Buf(randomFloats(xs.count, seed: 5, range: -2...2)), w = Buf(randomFloats(sl.fullCount, seed: 6))
            let d = fusedAgainstSeparate(ys, Normalization(c: c, seed: 7), act) { e, y in
                DepthwiseConv.forward(convContext, x: x.r, shape: xs, weight: w.r, slice: sl, stride: stride, epilogue: e, y: y.m)
            }
            #expect(d.count == 0, "\(act) \(isa) \(n)x\(hw)x\(hw)x\(c) k\(k) s\(stride): \(d.count) differ, max \(d.relative)")
        }
    }

    @Test(arguments: Activation.allCases, KernelConvTests.isas)
    func stem(_ act: Activation, _ isa: VectorISA) {
        let convContext = ComputeContext(workers: 2, vectorISA: isa)
        for (hw, cout, stride) in [(32, 16, 2), (24, 8, 1), (17, 24, 2)] {
            let xs = Shape4(n: 3, h: hw, w: hw, c: 3)
            let sl = ConvWeightSlice(outMax: 24, inMax: 3, kMax: 3, cout: cout, cin: 3, k: 3)
            let ys = Conv2D.outputShape(xs, slice: sl, stride: stride)
            let x = Buf(randomFloats(xs.count, seed: 8, range: -2...2)), w = Buf(randomFloats(sl.fullCount, seed: 9))
            let d = fusedAgainstSeparate(ys, Normalization(c: cout, seed: 10), act) { e, y in
                Conv2D.forward(convContext, x: x.r, shape: xs, weight: w.r, slice: sl, stride: stride, epilogue: e, y: y.m)
            }
            #expect(d.count == 0, "\(act) \(isa) \(hw)x\(hw) -> \(cout) s\(stride): \(d.count) differ, max \(d.relative)")
        }
    }

    /// The AVX-512 swish epilogue against the Swift one on values that exercise every
    /// branch of the exponential: both clamps, the overflow side (x -> -inf), signed
    /// zeros, subnormals, infinities and NaN; channel counts with 16-lane blocks, an
    /// 8-lane block and a masked rest. Bit for bit. Reported as skipped on a CPU without
    /// AVX-512.
    @Test(.enabled(if: VectorISA.supported == .avx512, "the CPU has no AVX-512: the Swift loop is the only one"))
    func swishEpilogueIsTheSameOnEveryISA() {
        let special: [Float] = [0, -0, Float(bitPattern: 0x0001_0000), -Float(bitPattern: 0x0001_0000), .leastNormalMagnitude, 87.32, 87.34, 88.0, 100, -88.36, -88.38, -95, -200,
                                .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0.5, -0.5, 1e-8, -3]
        for c in [5, 8, 16, 24, 37, 48] {
            let rows = 40
            var x = randomFloats(rows * c, seed: UInt64(c), range: -20...20)
            for (i, v) in special.enumerated() { x[(i * 7) % x.count] = v }
            let affine = ChannelAffine(scale: randomFloats(c, seed: 50, range: 0.5...2), bias: randomFloats(c, seed: 51), activation: .swish)
            var swift = x, wide = x
            swift.withUnsafeMutableBufferPointer { affine.apply($0.baseAddress!, rows: rows, isa: .avx2) }
            wide.withUnsafeMutableBufferPointer { affine.apply($0.baseAddress!, rows: rows, isa: .avx512) }
            let d = Self.difference(wide, swift)
            #expect(d.count == 0, "c=\(c): \(d.count) of \(x.count) differ, max \(d.relative)")
        }
    }
}

/// Which kernels the CPU runs: the detection against the kernel's own list of features.
@Suite struct VectorISATests {
    @Test func detectionMatchesTheCPUFlags() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        #expect(flags.contains("avx2") && flags.contains("fma"), "the kernels need AVX2 and FMA")
        #expect((VectorISA.supported == .avx512) == flags.contains("avx512f"))
        #expect(VectorISA.avx2.isSupported)
    }
}
