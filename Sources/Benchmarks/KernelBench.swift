import Foundation
import NASCore
import System

/// Throughput of the NASCore kernels on the official AlphaNet space's shapes
/// (batch 32, 64x64 and 128x128 inputs) against the machine's own ceilings measured
/// in the same run: OpenBLAS sgemm 2048³ and a memcpy-style bandwidth.
///
/// Each figure is the best of repeated runs (warm caches for small tensors, which is
/// what a training step sees for the activations it just produced).
enum KernelBench {
    final class Buffer {
        let p: UnsafeMutableBufferPointer<Float>
        init(_ count: Int, seed: UInt64 = 1) {
            p = .allocate(capacity: max(count, 1))
            var g = SeededRandom(seed: seed)
            for i in 0..<p.count { p[i] = g.uniformFloat() - 0.5 }
        }
        deinit { p.deallocate() }
        var r: UnsafeBufferPointer<Float> { UnsafeBufferPointer(p) }
        var m: UnsafeMutableBufferPointer<Float> { p }
        var base: UnsafeMutablePointer<Float> {
            guard let b = p.baseAddress else { preconditionFailure("empty benchmark buffer") }
            return b
        }
    }

    /// Best wall time in seconds of `body` over at least 3 runs and about `budget` seconds.
    static func time(budget: Double = 0.25, _ body: () -> Void) -> Double {
        body()  // warm-up (workspace growth, page faults)
        var best = Double.infinity, spent = 0.0, runs = 0
        while runs < 3 || (spent < budget && runs < 1000) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            best = min(best, dt)
            spent += dt
            runs += 1
        }
        return best
    }

    static func emit(_ fields: [(String, Any)]) {
        let parts = fields.map { key, value -> String in
            switch value {
            case let d as Double: return "\"\(key)\":\(String(format: "%.2f", d))"
            case let i as Int: return "\"\(key)\":\(i)"
            default: return "\"\(key)\":\"\(value)\""
            }
        }
        print("{" + parts.joined(separator: ",") + "}")
    }

    /// `only`: run just the groups named (conv1x1, stem, depthwise, norm-act); the sgemm
    /// peak and memcpy ceilings always run.
    static func run(only: Set<String>? = nil) {
        func want(_ group: String) -> Bool { only?.contains(group) ?? true }
        let workers = Cores.available
        let ours = ComputeContext(workers: workers, blasThreads: 1)

        // Ceiling 1: sgemm 2048³, both threading policies.
        let nG = 2048
        let a = Buffer(nG * nG, seed: 1), b = Buffer(nG * nG, seed: 2), c = Buffer(nG * nG, seed: 3)
        func gemmPeak(_ ctx: ComputeContext) -> Double {
            let t = time(budget: 1) {
                Gemm.sgemm(ctx, transA: false, transB: false, m: nG, n: nG, k: nG, a: a.base, lda: nG,
                           b: b.base, ldb: nG, beta: 0, c: c.base, ldc: nG)
            }
            return 2 * pow(Double(nG), 3) / t * 1e-9
        }
        let peak = gemmPeak(ours)
        let blasCtx = ComputeContext(workers: 1, blasThreads: workers)
        let peakBLAS = gemmPeak(blasCtx)
        _ = ComputeContext(workers: workers, blasThreads: 1)  // back to our policy
        emit([("kernel", "sgemm_peak"), ("shape", "2048x2048x2048"), ("policy", "split \(workers) x 1 thread"), ("gflops", peak), ("sgemm_peak_gflops", peak),
              ("blas_kernels", BLASKernels.coreName), ("openblas_coretype", BLASKernels.coreTypeSetting)])
        emit([("kernel", "sgemm_peak"), ("shape", "2048x2048x2048"), ("policy", "openblas \(workers) threads"), ("gflops", peakBLAS), ("sgemm_peak_gflops", peak)])

        // Ceiling 2: copy bandwidth (read + write bytes), 64 MiB, split over workers.
        let nB = 16 << 20
        let src = Buffer(nB), dst = Buffer(nB)
        func copyBandwidth(budget: Double) -> Double {
            let tCopy = time(budget: budget) {
                ours.parallelChunks(nB, minChunk: 1 << 16) { _, r in
                    (dst.base + r.lowerBound).update(from: src.base + r.lowerBound, count: r.count)
                }
            }
            return 8 * Double(nB) / tCopy * 1e-9
        }
        let bw = copyBandwidth(budget: 1)
        emit([("kernel", "memcpy"), ("shape", "64MiB"), ("gbps", bw), ("sgemm_peak_gflops", peak)])

        // 1x1 convolutions: (label, n, h, w, cin, cout).
        let pointwise: [(String, Int, Int, Int, Int, Int)] = [
            ("64px mb2 expand", 32, 16, 16, 24, 144), ("64px mb2 project", 32, 16, 16, 144, 24),
            ("64px mb3 expand", 32, 8, 8, 40, 240), ("64px mb3 project", 32, 8, 8, 240, 40),
            ("64px mb5 expand", 32, 4, 4, 128, 768), ("64px mb5 project", 32, 4, 4, 768, 128),
            ("64px mb7 expand", 32, 2, 2, 216, 1296), ("64px mb7 project", 32, 2, 2, 1296, 216),
            ("64px last conv", 32, 2, 2, 216, 1344), ("64px feature mix", 32, 1, 1, 1344, 1984),
            ("128px mb2 expand", 32, 32, 32, 24, 144), ("128px mb3 expand", 32, 16, 16, 40, 240),
            ("224px mb3 expand (28x28)", 32, 28, 28, 40, 240), ("224px mb3 project (28x28)", 32, 28, 28, 240, 40),
            // A0@224's largest maps in estimate-acc's evaluation chunks of 10 images.
            ("224px A0 mb2 expand (112x112)", 10, 112, 112, 16, 64), ("224px A0 mb2 expand", 10, 56, 56, 24, 96),
            ("224px A0 mb2 project", 10, 56, 56, 96, 24),
        ]
        for (label, n, h, w, cin, cout) in pointwise where want("conv1x1") {
            let xs = Shape4(n: n, h: h, w: w, c: cin)
            // Sliced from a larger supernet weight, as in training.
            let sl = ConvWeightSlice(outMax: cout + 16, inMax: cin + 8, cout: cout, cin: cin)
            let x = Buffer(xs.count), wt = Buffer(sl.fullCount), y = Buffer(xs.pixels * cout)
            let dx = Buffer(xs.count), dw = Buffer(sl.fullCount)
            let flops = 2 * Double(xs.pixels * cin * cout)
            for (policy, ctx) in [("ours", ours), ("openblas", blasCtx)] {
                if policy == "openblas" { _ = ComputeContext(workers: 1, blasThreads: workers) }
                let tf = time { PointwiseConv.forward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, y: y.m) }
                let td = time { PointwiseConv.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, dy: y.r, dx: dx.m, dWeight: nil) }
                let tw = time { PointwiseConv.backward(ctx, x: x.r, shape: xs, weight: wt.r, slice: sl, dy: y.r, dx: nil, dWeight: dw.m) }
                for (pass, t) in [("forward", tf), ("backward_data", td), ("backward_weight", tw)] {
                    let g = flops / t * 1e-9
                    emit([("kernel", "conv1x1_\(pass)"), ("shape", "\(xs)->\(cout) \(label)"), ("policy", policy),
                          ("gflops", g), ("pct_peak", 100 * g / peak), ("sgemm_peak_gflops", peak)])
                }
                if policy == "openblas" { _ = ComputeContext(workers: workers, blasThreads: 1) }
            }
        }

        // Stem 3x3 stride-2 convolution (im2col + GEMM).
        for (n, h) in [(32, 64), (32, 128)] where want("stem") {
            let xs = Shape4(n: n, h: h, w: h, c: 3)
            let sl = ConvWeightSlice(outMax: 24, inMax: 3, kMax: 3, cout: 24, cin: 3, k: 3)
            let ys = Conv2D.outputShape(xs, slice: sl, stride: 2)
            let x = Buffer(xs.count), wt = Buffer(sl.fullCount), y = Buffer(ys.count), dw = Buffer(sl.fullCount)
            let flops = 2 * Double(ys.count * 27)
            let tf = time { Conv2D.forward(ours, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: 2, y: y.m) }
            let tw = time { Conv2D.backward(ours, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: 2, dy: y.r, dx: nil, dWeight: dw.m) }
            emit([("kernel", "conv3x3_stem_forward"), ("shape", "\(xs)->24 s2"), ("gflops", flops / tf * 1e-9), ("sgemm_peak_gflops", peak)])
            emit([("kernel", "conv3x3_stem_backward_weight"), ("shape", "\(xs)->24 s2"), ("gflops", flops / tw * 1e-9), ("sgemm_peak_gflops", peak)])
        }

        // Depthwise: (n, h, w, c, k, stride). The first nine at batch 32 of the 64 / 128 px
        // training cases; then the largest shapes of max@128 at inference's batch 64 (a
        // third of its depthwise MACs are the [64,32,32,192] k5 layers); then A0@224's.
        let depthwise: [(Int, Int, Int, Int, Int, Int)] = [
            (32, 16, 16, 144, 3, 1), (32, 16, 16, 144, 5, 1), (32, 16, 16, 144, 3, 2),
            (32, 8, 8, 240, 5, 1), (32, 8, 8, 240, 7, 1), (32, 4, 4, 768, 3, 1), (32, 2, 2, 1296, 5, 1),
            (32, 32, 32, 144, 3, 1), (32, 32, 32, 96, 5, 2),
            (64, 32, 32, 192, 5, 1), (64, 64, 64, 144, 5, 2), (64, 16, 16, 240, 5, 1), (64, 8, 8, 768, 5, 1),
            // A0@224's largest maps in estimate-acc's evaluation chunks of 10 images.
            (10, 112, 112, 64, 3, 2), (10, 112, 112, 16, 3, 1), (10, 56, 56, 96, 3, 1),
        ]
        // Forward with AVX-512 (where the CPU has it) and with the AVX2 kernels, alternating.
        let avx2 = ours.vectorISA == .avx2 ? nil : ComputeContext(workers: workers, blasThreads: 1, vectorISA: .avx2)
        for (n, h, w, c, k, s) in depthwise where want("depthwise") {
            let xs = Shape4(n: n, h: h, w: w, c: c)
            let sl = DepthwiseConv.slice(cMax: c + 16, kMax: 7, c: c, k: k)
            let ys = DepthwiseConv.outputShape(xs, kernel: k, stride: s)
            let x = Buffer(xs.count), wt = Buffer(sl.fullCount), y = Buffer(ys.count)
            let dx = Buffer(xs.count), dw = Buffer(sl.fullCount)
            let flops = 2 * Double(ys.count * k * k)
            var tf = Double.infinity, tf2 = Double.infinity
            for _ in 0..<2 {
                tf = min(tf, time { DepthwiseConv.forward(ours, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: s, y: y.m) })
                if let avx2 { tf2 = min(tf2, time { DepthwiseConv.forward(avx2, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: s, y: y.m) }) }
            }
            let tb = time { DepthwiseConv.backward(ours, x: x.r, shape: xs, weight: wt.r, slice: sl, stride: s, dy: y.r, dx: dx.m, dWeight: dw.m) }
            emit([("kernel", "depthwise_forward"), ("shape", "\(xs) k\(k) s\(s)"), ("gflops", flops / tf * 1e-9),
                  ("vector_isa", ours.vectorISA.rawValue), ("gflops_avx2", flops / (avx2 == nil ? tf : tf2) * 1e-9), ("sgemm_peak_gflops", peak)])
            // Backward does both products (data and weight): 2x the forward's flops.
            emit([("kernel", "depthwise_backward"), ("shape", "\(xs) k\(k) s\(s)"), ("gflops", 2 * flops / tb * 1e-9), ("sgemm_peak_gflops", peak)])
        }

        // BatchNorm and activations: bytes that must move (each tensor read or written once).
        // memcpy_gbps is measured again next to each shape: this VM's memory bandwidth
        // changes by 2x between runs and at times within one (54 vs 110 GB/s).
        for (n, h, w, c) in [(32, 16, 16, 144), (32, 8, 8, 240), (32, 32, 32, 144)] where want("norm-act") {
            let bw = copyBandwidth(budget: 0.25)
            let s = Shape4(n: n, h: h, w: w, c: c)
            let x = Buffer(s.count), y = Buffer(s.count), dy = Buffer(s.count), dx = Buffer(s.count)
            let g = Buffer(c), bta = Buffer(c), mean = Buffer(c), inv = Buffer(c), dg = Buffer(c), db = Buffer(c)
            let bytes = 4 * Double(s.count)
            let tbf = time { BatchNorm.forwardTraining(ours, x: x.r, shape: s, gamma: g.r, beta: bta.r, y: y.m, saveMean: mean.m, saveInvStd: inv.m) }
            let tbb = time { BatchNorm.backward(ours, x: x.r, shape: s, gamma: g.r, mean: mean.r, invStd: inv.r, dy: dy.r, dx: dx.m, dGamma: dg.m, dBeta: db.m) }
            emit([("kernel", "batchnorm_train_forward"), ("shape", "\(s)"), ("gbps", 2 * bytes / tbf * 1e-9), ("memcpy_gbps", bw), ("sgemm_peak_gflops", peak)])
            emit([("kernel", "batchnorm_backward"), ("shape", "\(s)"), ("gbps", 3 * bytes / tbb * 1e-9), ("memcpy_gbps", bw), ("sgemm_peak_gflops", peak)])
            for act in [Activation.relu, .swish, .hswish] {
                let tf = time { act.forward(ours, x: x.r, y: y.m, count: s.count) }
                let tb = time { act.backward(ours, x: x.r, dy: dy.r, dx: dx.m, count: s.count) }
                emit([("kernel", "\(act)_forward"), ("shape", "\(s)"), ("gbps", 2 * bytes / tf * 1e-9), ("memcpy_gbps", bw), ("sgemm_peak_gflops", peak)])
                emit([("kernel", "\(act)_backward"), ("shape", "\(s)"), ("gbps", 3 * bytes / tb * 1e-9), ("memcpy_gbps", bw), ("sgemm_peak_gflops", peak)])
            }
        }
    }
}
