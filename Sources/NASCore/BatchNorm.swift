import CVectorKernels
import CCPUHints

/// Batch normalisation over the channels of an NHWC tensor (PyTorch `BatchNorm2d`,
/// `eps = 1e-5`), with channel-prefix slicing: a subnet with `c` channels uses the
/// first `c` entries of the supernet's `[cMax]` gamma, beta, running mean and variance.
///
/// Training forward, over the `M = n*h*w` pixels of each channel:
///   `mean = Σx / M`, `var = Σ(x - mean)² / M` (biased), `invstd = 1 / sqrt(var + eps)`,
///   `y = gamma · (x - mean) · invstd + beta`;
///   running stats: `r = (1 - f) · r + f · batch` with the *unbiased* variance
///   `var · M / (M - 1)` for `runningVar`, where `f = momentum`, or `1 / count` for
///   `momentum == nil` (cumulative average, PyTorch `momentum=None`, used by BN
///   recalibration); see `averagingFactor`.
/// Inference forward: `y = gamma · (x - runningMean) / sqrt(runningVar + eps) + beta`.
/// Backward (training): with `xhat = (x - mean) · invstd`,
///   `dbeta += Σ dy`, `dgamma += Σ dy · xhat`,
///   `dx = gamma · invstd · (dy - mean(dy) - xhat · mean(dy · xhat))` (overwritten).
///
/// Sums are accumulated in Double (per worker over a block of pixels, then combined)
/// after subtracting the first pixel's value as a shift, so the statistics are
/// accurate to a few float ulps even for `|mean| >> std`.
public enum BatchNorm {
    public static let eps: Float = 1e-5

    /// Sums over the processes of a data-parallel job (synchronised BatchNorm,
    /// `--sync-bn`): each process passes its own values and receives every process's
    /// sum, the same on all of them. Called on the calling thread of the forward or
    /// backward, in the same order on every process.
    public protocol CrossProcessSum: AnyObject {
        func sum(_ values: UnsafeMutableBufferPointer<Double>)
    }

    /// The factor `f` of the running-statistics update for one training batch, with
    /// PyTorch's semantics: increments `batchesTracked` (`num_batches_tracked`) and
    /// returns `momentum`, or `1 / batchesTracked` when `momentum` is nil.
    public static func averagingFactor(momentum: Float?, batchesTracked: inout Int) -> Float {
        batchesTracked += 1
        return momentum ?? 1 / Float(batchesTracked)
    }

    /// Running statistics to update during a training forward pass (prefix of `[cMax]`).
    public struct RunningUpdate {
        public var mean: UnsafeMutableBufferPointer<Float>
        public var variance: UnsafeMutableBufferPointer<Float>
        /// `f` in `r = (1 - f) · r + f · batch`; see `averagingFactor`.
        public var factor: Float
        public init(mean: UnsafeMutableBufferPointer<Float>, variance: UnsafeMutableBufferPointer<Float>, factor: Float) {
            self.mean = mean
            self.variance = variance
            self.factor = factor
        }
    }

    /// Per-worker Double sums of `f(x_row)` for two functions, combined in `out` [2c].
    /// `body(block, acc)` accumulates the rows of `block` into `acc[0..<2c]`.
    private static func reduce(_ ctx: ComputeContext, pixels m: Int, c: Int, scratchFloats: Int,
                               _ body: (RowBlock, UnsafeMutablePointer<Double>) -> Void)
        -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Float>) {
        let workers = ctx.workers
        let (acc, f) = ctx.workspace.split(doubles: 2 * c * (workers + 1), floats: scratchFloats)
        acc.initialize(repeating: 0, count: 2 * c * (workers + 1))
        // Blocks of 64 rows keep the block in L1/L2 while the channel loop inside `body`
        // makes its passes; whole-chunk passes re-read a big tensor from memory c/8 times.
        let used = ctx.parallelChunks(m, minChunk: max(1, 8192 / max(c, 1))) { wi, rows in
            var r0 = rows.lowerBound
            while r0 < rows.upperBound {
                let r1 = min(r0 + 64, rows.upperBound)
                body(RowBlock(rows: r0..<r1, next: r1..<min(r1 + 64, rows.upperBound), isFirst: r0 == rows.lowerBound),
                     acc + 2 * c * (wi + 1))
                r0 = r1
            }
        }
        for wi in 0..<used {
            let p = acc + 2 * c * (wi + 1)
            for j in 0..<(2 * c) { acc[j] += p[j] }
        }
        return (acc, f)
    }

    /// Above this many bytes read, a statistics pass streams its blocks in ahead of the
    /// loop (`Streamer`) instead of leaving it to the hardware prefetchers, which follow
    /// the channel-group loops (down a block's rows, one cache line per row at a time)
    /// badly once the tensor comes from memory. Below the threshold the tensors are
    /// likely still cached from the layer that wrote them, and reading each block ahead
    /// only adds loads. Half the L3 (32 MiB) of the 2-core EPYC it was tuned on, a
    /// constant since `sysconf` reports the host's L3 (384 MiB) in the VM. See
    /// BENCHMARKS.md "Kernels".
    public static let streamThresholdBytes = 16 << 20

    /// The rows a worker sums in one step of `reduce`, and those of its next step (empty
    /// at the end of its chunk).
    struct RowBlock {
        let rows: Range<Int>, next: Range<Int>
        let isFirst: Bool
    }

    /// Brings blocks of rows of up to two tensors into the cache ahead of a statistics
    /// loop, with software prefetches in address order: the first block of a worker's
    /// chunk all at once, each later one a cache line per tensor per step of the loop
    /// over the block before it, so the memory traffic overlaps the arithmetic (a
    /// prefetch, unlike a load, does not hold the loop up).
    struct Streamer {
        let a: UnsafePointer<Float>, b: UnsafePointer<Float>?
        var offset: Int, end: Int

        init(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>?, c: Int, block: RowBlock) {
            self.a = a
            self.b = b
            if block.isFirst {
                for offset in stride(from: 4 * block.rows.lowerBound * c, to: 4 * block.rows.upperBound * c, by: 64) {
                    an_prefetch(UnsafeRawPointer(a) + offset)
                    if let b { an_prefetch(UnsafeRawPointer(b) + offset) }
                }
            }
            offset = 4 * block.next.lowerBound * c
            end = 4 * block.next.upperBound * c
        }

        /// Prefetches the next cache line of the next block (of each tensor).
        @inline(__always) mutating func step() {
            guard offset < end else { return }
            an_prefetch(UnsafeRawPointer(a) + offset)
            if let b { an_prefetch(UnsafeRawPointer(b) + offset) }
            offset += 64
        }
    }

    /// Adds `a = x - shift` and `a²` of rows into `acc[0..<c]`, `acc[c..<2c]` (Double).
    @inline(__always)
    private static func sumShifted(_ x: UnsafePointer<Float>, _ shift: UnsafePointer<Float>, c: Int,
                                   block: RowBlock, stream: Bool, _ acc: UnsafeMutablePointer<Double>) {
        sumBlock(c: c, block: block, streaming: stream ? (x, nil) : nil, into: acc, { r, ch in
            let a = SIMD8<Double>(load8(x + r * c + ch) - load8(shift + ch))
            return (a, a, a)
        }, { r, ch in
            let a = Double(x[r * c + ch] - shift[ch])
            return (a, a * a)
        })
    }

    /// Adds Σ dy and Σ dy·(x - mean) of rows into `acc[0..<c]`, `acc[c..<2c]` (Double).
    @inline(__always)
    private static func sumGradients(_ xp: UnsafePointer<Float>, _ dyp: UnsafePointer<Float>, _ mp: UnsafePointer<Float>,
                                     c: Int, block: RowBlock, stream: Bool, _ acc: UnsafeMutablePointer<Double>) {
        sumBlock(c: c, block: block, streaming: stream ? (xp, dyp) : nil, into: acc, { r, ch in
            let g = load8(dyp + r * c + ch)
            return (SIMD8<Double>(g), SIMD8<Double>(g * (load8(xp + r * c + ch) - load8(mp + ch))), SIMD8(repeating: 1))
        }, { r, ch in
            let g = dyp[r * c + ch]
            return (Double(g), Double(g * (xp[r * c + ch] - mp[ch])))
        })
    }

    /// `sumTermPairs` over `block`, with the tensors of `streaming` (if any) streamed in
    /// ahead by a `Streamer`; without, the loop has no prefetch step at all.
    @inline(__always)
    private static func sumBlock(c: Int, block: RowBlock, streaming: (UnsafePointer<Float>, UnsafePointer<Float>?)?,
                                 into acc: UnsafeMutablePointer<Double>,
                                 _ term8: (_ row: Int, _ ch: Int) -> (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>),
                                 _ term1: (_ row: Int, _ ch: Int) -> (Double, Double)) {
        if let (a, b) = streaming {
            var streamer = Streamer(a, b, c: c, block: block)
            sumTermPairs(c: c, rows: block.rows, into: acc, step: { streamer.step() }, term8, term1)
        } else {
            sumTermPairs(c: c, rows: block.rows, into: acc, step: {}, term8, term1)
        }
    }

    /// For every channel, adds Σ over `rows` of `u` and of `v·w`, with `(u, v, w) = term8(r,
    /// ch)` (8 channels from `ch`; the product is a fused multiply-add into the sum), into
    /// `acc[ch]` and `acc[c + ch]`; `term1` gives the two terms of the channels past the
    /// last multiple of 8. Two rows per step into two sets of sums: one set is
    /// a chain of dependent adds whose latency, not the loads, limited the loop.
    /// `step()` runs once per two-row step (a block of 2k rows and c channels has
    /// k·c/8 steps, as many as its cache lines, c·2k/16).
    @inline(__always)
    private static func sumTermPairs(c: Int, rows: Range<Int>, into acc: UnsafeMutablePointer<Double>,
                                     step: () -> Void,
                                     _ term8: (_ row: Int, _ ch: Int) -> (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>),
                                     _ term1: (_ row: Int, _ ch: Int) -> (Double, Double)) {
        var ch = 0
        while ch + 8 <= c {
            var s1 = SIMD8<Double>(), s2 = SIMD8<Double>(), t1 = SIMD8<Double>(), t2 = SIMD8<Double>()
            var r = rows.lowerBound
            while r + 2 <= rows.upperBound {
                step()
                let (a1, a2, a3) = term8(r, ch), (b1, b2, b3) = term8(r + 1, ch)
                s1 += a1
                s2 = s2.addingProduct(a2, a3)
                t1 += b1
                t2 = t2.addingProduct(b2, b3)
                r += 2
            }
            if r < rows.upperBound {
                let (a1, a2, a3) = term8(r, ch)
                s1 += a1
                s2 = s2.addingProduct(a2, a3)
            }
            add8(s1 + t1, to: acc + ch)
            add8(s2 + t2, to: acc + c + ch)
            ch += 8
        }
        while ch < c {
            var s1 = 0.0, s2 = 0.0
            for r in rows {
                let (a1, a2) = term1(r, ch)
                s1 += a1
                s2 += a2
            }
            acc[ch] += s1
            acc[c + ch] += s2
            ch += 1
        }
    }

    /// `y[r, ch] = act(x[r, ch] · scale[ch] + bias[ch])` (one fused multiply-add) over rows, parallel; one pass
    /// whatever the activation (the loop is specialised for it). Swish with `.avx512`
    /// runs `ChannelAffine`'s 512-bit loop (bit-identical; swish is compute-bound).
    private static func affine(_ ctx: ComputeContext, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               m: Int, c: Int, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               activation: Activation = .identity) {
        if ctx.vectorISA == .avx512 && activation == .swish {
            ctx.parallelChunks(m, minChunk: max(1, 16384 / max(c, 1))) { _, rows in
                vk_affine_swish_rows_avx512(x + rows.lowerBound * c, y + rows.lowerBound * c, rows.count, Int32(c), scale, bias)
            }
            return
        }
        activation.dispatch(AffineLoop(ctx: ctx, x: x, y: y, m: m, c: c, scale: scale, bias: bias))
    }

    private struct AffineLoop: ActivationLoop {
        let ctx: ComputeContext, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, m: Int, c: Int
        let scale: UnsafePointer<Float>, bias: UnsafePointer<Float>
        @inline(__always) func run<K: ActivationKernel>(_: K.Type) {
            let x = x, y = y, c = c, scale = scale, bias = bias
            ctx.parallelChunks(m, minChunk: max(1, 16384 / max(c, 1))) { _, rows in
                ChannelAffine.Rows(x: x, y: y, rows: rows, c: c, scale: scale, bias: bias).run(K.self)
            }
        }
    }

    /// Training forward. `saveMean` and `saveInvStd` (`[c]`) receive the batch mean and
    /// `1/sqrt(var+eps)` that `backward` needs; `running` (optional) is updated.
    /// With `activation`, `y = activation(BN(x))` in the same pass (the BN output itself
    /// is not kept; `backward` recomputes it from `x`). `y` may alias `x`.
    /// - Precondition: `shape.pixels > 1` (PyTorch refuses one value per channel too).
    public static func forwardTraining(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4,
        gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        y: UnsafeMutableBufferPointer<Float>,
        saveMean: UnsafeMutableBufferPointer<Float>, saveInvStd: UnsafeMutableBufferPointer<Float>,
        running: RunningUpdate? = nil, activation: Activation = .identity, sync: (any CrossProcessSum)? = nil
    ) {
        let m = shape.pixels, c = shape.c
        precondition(m > 1, "BatchNorm: training needs more than one value per channel, got \(shape)")
        requireCount(x, shape.count, "x"); requireCount(y, shape.count, "y")
        requireCount(gamma, c, "gamma"); requireCount(beta, c, "beta")
        requireCount(saveMean, c, "saveMean"); requireCount(saveInvStd, c, "saveInvStd")
        if let running {
            requireCount(running.mean, c, "running mean"); requireCount(running.variance, c, "running variance")
        }
        let xp = x.base
        let stream = 4 * m * c > streamThresholdBytes
        let (acc, f) = reduce(ctx, pixels: m, c: c, scratchFloats: 3 * c) { block, a in
            sumShifted(xp, xp, c: c, block: block, stream: stream, a)
        }
        let scale = f, bias = f + c
        let g = gamma.base, b = beta.base, sm = saveMean.base, si = saveInvStd.base
        if let sync {
            let (mean, variance, total) = combined(acc, first: xp, pixels: m, c: c, sync)
            for ch in 0..<c {
                let inv = 1 / (variance[ch] + Double(eps)).squareRoot()
                sm[ch] = Float(mean[ch])
                si[ch] = Float(inv)
                scale[ch] = g[ch] * Float(inv)
                bias[ch] = b[ch] - Float(mean[ch]) * scale[ch]
                if let running {
                    let fr = running.factor
                    running.mean[ch] = (1 - fr) * running.mean[ch] + fr * Float(mean[ch])
                    running.variance[ch] = (1 - fr) * running.variance[ch] + fr * Float(variance[ch] * total / (total - 1))
                }
            }
            affine(ctx, xp, y.base, m: m, c: c, scale: scale, bias: bias, activation: activation)
            return
        }
        let md = Double(m)
        for ch in 0..<c {
            let s1 = acc[ch] / md
            let v = max(0, acc[c + ch] / md - s1 * s1)
            let mean = Double(xp[ch]) + s1
            let inv = 1 / (v + Double(eps)).squareRoot()
            sm[ch] = Float(mean)
            si[ch] = Float(inv)
            scale[ch] = g[ch] * Float(inv)
            bias[ch] = b[ch] - Float(mean) * scale[ch]
            if let running {
                let fr = running.factor
                running.mean[ch] = (1 - fr) * running.mean[ch] + fr * Float(mean)
                running.variance[ch] = (1 - fr) * running.variance[ch] + fr * Float(v * md / (md - 1))
            }
        }
        affine(ctx, xp, y.base, m: m, c: c, scale: scale, bias: bias, activation: activation)
    }

    /// The mean and biased variance of every channel over all processes' pixels, and
    /// their total count, from this process's shifted sums `acc` (`Σ a`, `Σ a²` with
    /// `a = x - first`): each process's mean and sum of squared deviations, combined
    /// exactly (Chan et al.) in two all-reduces, so no process's shift matters.
    private static func combined(_ acc: UnsafeMutablePointer<Double>, first xp: UnsafePointer<Float>, pixels m: Int, c: Int,
                                 _ sync: any CrossProcessSum) -> (mean: [Double], variance: [Double], total: Double) {
        let md = Double(m)
        var localMean = [Double](repeating: 0, count: c)
        // [Σ_p n_p·mean_p per channel, Σ_p n_p]
        var first = [Double](repeating: 0, count: c + 1)
        for ch in 0..<c {
            localMean[ch] = Double(xp[ch]) + acc[ch] / md
            first[ch] = md * localMean[ch]
        }
        first[c] = md
        first.withUnsafeMutableBufferPointer { sync.sum($0) }
        let total = first[c]
        let mean = (0..<c).map { first[$0] / total }
        // Σ_p (M2_p + n_p·(mean_p - mean)²), M2_p = Σ a² - (Σ a)²/n_p
        var second = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            let d = localMean[ch] - mean[ch]
            second[ch] = max(0, acc[c + ch] - acc[ch] * acc[ch] / md) + md * d * d
        }
        second.withUnsafeMutableBufferPointer { sync.sum($0) }
        return (mean, second.map { $0 / total }, total)
    }

    /// Inference forward with the running statistics, optionally followed by
    /// `activation` in the same pass. `y` may alias `x`.
    public static func forwardInference(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4,
        gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        runningMean: UnsafeBufferPointer<Float>, runningVar: UnsafeBufferPointer<Float>,
        y: UnsafeMutableBufferPointer<Float>, activation: Activation = .identity
    ) {
        let c = shape.c
        requireCount(x, shape.count, "x"); requireCount(y, shape.count, "y")
        requireCount(gamma, c, "gamma"); requireCount(beta, c, "beta")
        requireCount(runningMean, c, "runningMean"); requireCount(runningVar, c, "runningVar")
        let f = ChannelAffine(batchNormGamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, channels: c)
        f.scale.withUnsafeBufferPointer { s in
            f.bias.withUnsafeBufferPointer { b in
                affine(ctx, x.base, y.base, m: shape.pixels, c: c, scale: s.base, bias: b.base, activation: activation)
            }
        }
    }

    /// The activation fused into a training forward, for `backward`: its kind and the
    /// BN's `beta`, from which the pre-activation value `gamma·xhat + beta` is recomputed.
    public struct FusedActivation {
        public var activation: Activation
        public var beta: UnsafeBufferPointer<Float>
        public init(_ activation: Activation, beta: UnsafeBufferPointer<Float>) {
            self.activation = activation
            self.beta = beta
        }
    }

    /// Training backward from the forward's input `x` and saved `mean`, `invStd`.
    /// `dx` (if given) is overwritten and may alias `dy`; `dGamma`, `dBeta` (prefix of
    /// `[cMax]`) are accumulated into.
    ///
    /// With `fused` (the forward ran with that activation), `dy` is the gradient at the
    /// activation's output; the gradient at its input is formed inside the reduction
    /// pass (one pass over `x` and `dy` instead of two) and written over `dy`.
    public static func backward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4,
        gamma: UnsafeBufferPointer<Float>,
        mean: UnsafeBufferPointer<Float>, invStd: UnsafeBufferPointer<Float>,
        dy: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?,
        dGamma: UnsafeMutableBufferPointer<Float>?, dBeta: UnsafeMutableBufferPointer<Float>?,
        fused: FusedActivation? = nil, sync: (any CrossProcessSum)? = nil
    ) {
        let m = shape.pixels, c = shape.c
        requireCount(x, shape.count, "x"); requireCount(dy, shape.count, "dy")
        requireCount(gamma, c, "gamma"); requireCount(mean, c, "mean"); requireCount(invStd, c, "invStd")
        if let dx { requireCount(dx, shape.count, "dx") }
        if let dGamma { requireCount(dGamma, c, "dGamma") }
        if let dBeta { requireCount(dBeta, c, "dBeta") }
        let xp = x.base, dyp = dy.base, mp = mean.base
        if let fused {
            requireCount(fused.beta, c, "beta")
            // The forward's scale and shift, bit for bit, so the recomputed BN output equals
            // the one the activation saw.
            // Not from the workspace: the reduction below takes the workspace for its sums.
            let ss = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
            defer { ss.deallocate() }
            for ch in 0..<c {
                ss[ch] = gamma[ch] * invStd[ch]
                ss[c + ch] = fused.beta[ch] - mean[ch] * ss[ch]
            }
            backwardFused(ctx, x: xp, dy: UnsafeMutablePointer(mutating: dyp), shape: shape, gamma: gamma, mean: mean, invStd: invStd,
                          scaleShift: UnsafePointer(ss), activation: fused.activation, dx: dx, dGamma: dGamma, dBeta: dBeta, sync: sync)
            return
        }
        // acc[0..<c] = Σ dy, acc[c..<2c] = Σ dy · (x - mean).
        let stream = 8 * m * c > streamThresholdBytes
        let (acc, f) = reduce(ctx, pixels: m, c: c, scratchFloats: 3 * c) { block, a in
            sumGradients(xp, dyp, mp, c: c, block: block, stream: stream, a)
        }
        finishBackward(ctx, x: xp, dy: dyp, m: m, c: c, gamma: gamma, mean: mean, invStd: invStd,
                       sums: acc, coefficients: f, dx: dx, dGamma: dGamma, dBeta: dBeta, sync: sync)
    }

    /// `dBeta`, `dGamma` from the sums `acc` (Σ dy, Σ dy·(x - mean)), then the `dx` pass.
    /// With `sync`, `dBeta` and `dGamma` stay this process's own (the gradient
    /// all-reduce averages them, as every other gradient), while `dx` takes the sums and
    /// the pixel count of every process: the forward normalised with their statistics.
    private static func finishBackward(
        _ ctx: ComputeContext, x xp: UnsafePointer<Float>, dy dyp: UnsafePointer<Float>, m: Int, c: Int,
        gamma: UnsafeBufferPointer<Float>, mean: UnsafeBufferPointer<Float>, invStd: UnsafeBufferPointer<Float>,
        sums acc: UnsafeMutablePointer<Double>, coefficients f: UnsafeMutablePointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?,
        dGamma: UnsafeMutableBufferPointer<Float>?, dBeta: UnsafeMutableBufferPointer<Float>?,
        sync: (any CrossProcessSum)? = nil
    ) {
        let mp = mean.base
        var md = Double(m)
        let ca = f, cb = f + c, cc = f + 2 * c
        if let sync {
            for ch in 0..<c {
                dBeta?[ch] += Float(acc[ch])
                dGamma?[ch] += Float(acc[c + ch] * Double(invStd[ch]))
            }
            var all = [Double](UnsafeBufferPointer(start: acc, count: 2 * c)) + [md]
            all.withUnsafeMutableBufferPointer { sync.sum($0) }
            for j in 0..<(2 * c) { acc[j] = all[j] }
            md = all[2 * c]
        }
        for ch in 0..<c {
            let inv = Double(invStd[ch])
            let sumDy = acc[ch], sumDyXhat = acc[c + ch] * inv
            if sync == nil {
                dBeta?[ch] += Float(sumDy)
                dGamma?[ch] += Float(sumDyXhat)
            }
            // dx = a·(dy - mean(dy) - (x - mean)·invstd·k) with a = gamma·invstd,
            // k = mean(dy·xhat), evaluated as a·dy + b·(x - mean) + cst.
            let a = Double(gamma[ch]) * inv
            let k = sumDyXhat / md
            ca[ch] = Float(a)
            cb[ch] = Float(-a * inv * k)
            cc[ch] = Float(-a * sumDy / md)
        }
        guard let dx else { return }
        let dxp = dx.base
        ctx.parallelChunks(m, minChunk: max(1, 16384 / max(c, 1))) { _, rows in
            for r in rows {
                let o = r * c
                var ch = 0
                while ch + 8 <= c {
                    let v = load8(dyp + o + ch) * load8(ca + ch) + (load8(xp + o + ch) - load8(mp + ch)) * load8(cb + ch) + load8(cc + ch)
                    store8(v, dxp + o + ch)
                    ch += 8
                }
                while ch < c { dxp[o + ch] = dyp[o + ch] * ca[ch] + (xp[o + ch] - mp[ch]) * cb[ch] + cc[ch]; ch += 1 }
            }
        }
    }

    /// The fused backward's reduction: per element `g = dy · act'(x·scale + shift)`,
    /// written over `dy`, with Σ g and Σ g·(x - mean) accumulated as in `backward`.
    private static func backwardFused(
        _ ctx: ComputeContext, x xp: UnsafePointer<Float>, dy dyp: UnsafeMutablePointer<Float>, shape: Shape4,
        gamma: UnsafeBufferPointer<Float>, mean: UnsafeBufferPointer<Float>, invStd: UnsafeBufferPointer<Float>,
        scaleShift ss: UnsafePointer<Float>, activation act: Activation,
        dx: UnsafeMutableBufferPointer<Float>?,
        dGamma: UnsafeMutableBufferPointer<Float>?, dBeta: UnsafeMutableBufferPointer<Float>?,
        sync: (any CrossProcessSum)?
    ) {
        let m = shape.pixels, c = shape.c
        let (acc, f) = act.dispatch(FusedSumsLoop(ctx: ctx, x: xp, dy: dyp, m: m, c: c, mean: mean.base, scaleShift: ss))
        finishBackward(ctx, x: xp, dy: UnsafePointer(dyp), m: m, c: c, gamma: gamma, mean: mean, invStd: invStd,
                       sums: acc, coefficients: f, dx: dx, dGamma: dGamma, dBeta: dBeta, sync: sync)
    }

    /// `g = K.gradient8(x·scale + shift, dy)` written over `dy`, then Σ g and Σ g·(x - mean),
    /// per block of rows: the gradient loop first, the Double sums second over the same
    /// block while it is in L1 (one loop doing both runs out of registers).
    private struct FusedSumsLoop: ActivationLoop {
        let ctx: ComputeContext, x: UnsafePointer<Float>, dy: UnsafeMutablePointer<Float>, m: Int, c: Int
        let mean: UnsafePointer<Float>, scaleShift: UnsafePointer<Float>
        @inline(__always) func run<K: ActivationKernel>(_: K.Type) -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Float>) {
            let xp = x, dyp = dy, c = c, mp = mean, ss = scaleShift
            let wideSwish = K.self == SwishKernel.self && ctx.vectorISA == .avx512
            return reduce(ctx, pixels: m, c: c, scratchFloats: 3 * c) { block, a in
                let rows = block.rows
                // Gradient at the activation's input, row by row over all channels
                // (contiguous); swish with AVX-512 in C (bit-identical, compute-bound).
                if wideSwish {
                    vk_swish_gradient_affine_rows_avx512(xp + rows.lowerBound * c, dyp + rows.lowerBound * c, rows.count, Int32(c), ss, ss + c)
                } else {
                    for r in rows {
                        let xr = xp + r * c, gr = dyp + r * c
                        var ch = 0
                        while ch + 8 <= c {
                            store8(K.gradient8(load8(ss + c + ch).addingProduct(load8(xr + ch), load8(ss + ch)), load8(gr + ch)), gr + ch)
                            ch += 8
                        }
                        if ch < c {
                            let t = c - ch
                            storePartial(K.gradient8(loadPartial(ss + c + ch, t).addingProduct(loadPartial(xr + ch, t), loadPartial(ss + ch, t)),
                                                     loadPartial(gr + ch, t)), gr + ch, t)
                        }
                    }
                }
                // The sums, as in the unfused backward.
                // No streaming: the gradient loop above has just read the block in order.
                sumGradients(xp, UnsafePointer(dyp), mp, c: c, block: block, stream: false, a)
            }
        }
    }
}
