/// Squeeze-and-excitation of the official `DynamicSE`, as one composite layer:
///
///   `pooled[n,c] = mean_{h,w} x[n,h,w,c]`
///   `r = relu(pooled · Wr[:mid, :c]ᵀ + br[:mid])`      (reduce 1x1 conv, bias)
///   `z = r · We[:c, :mid]ᵀ + be[:c]`                    (expand 1x1 conv, bias)
///   `s = hsigmoid(z)`,  `y[n,h,w,c] = x[n,h,w,c] · s[n,c]`
///
/// Weights: reduce `[midMax, cMax, 1, 1]`, bias `[midMax]`; expand `[cMax, midMax, 1, 1]`,
/// bias `[cMax]`; the subnet uses the leading `mid` x `c` / `c` x `mid` blocks
/// (`mid = make_divisible(c / 4, 8)` is the caller's business).
/// Forward saves `pooled`, `r`, `z`, `s` in `saved` (`savedCount` floats) for backward.
public enum SqueezeExcite {
    /// Weight and bias buffers of one SE block (full supernet size) with the used slice.
    public struct Parameters {
        public var reduceWeight: UnsafeBufferPointer<Float>
        public var reduceBias: UnsafeBufferPointer<Float>
        public var expandWeight: UnsafeBufferPointer<Float>
        public var expandBias: UnsafeBufferPointer<Float>
        public var cMax: Int
        public var midMax: Int
        public init(reduceWeight: UnsafeBufferPointer<Float>, reduceBias: UnsafeBufferPointer<Float>,
                    expandWeight: UnsafeBufferPointer<Float>, expandBias: UnsafeBufferPointer<Float>,
                    cMax: Int, midMax: Int) {
            self.reduceWeight = reduceWeight
            self.reduceBias = reduceBias
            self.expandWeight = expandWeight
            self.expandBias = expandBias
            self.cMax = cMax
            self.midMax = midMax
        }
        func reduceSlice(c: Int, mid: Int) -> ConvWeightSlice { ConvWeightSlice(outMax: midMax, inMax: cMax, cout: mid, cin: c) }
        func expandSlice(c: Int, mid: Int) -> ConvWeightSlice { ConvWeightSlice(outMax: cMax, inMax: midMax, cout: c, cin: mid) }
    }

    /// Gradient buffers, full supernet size, accumulated into.
    public struct Gradients {
        public var reduceWeight: UnsafeMutableBufferPointer<Float>
        public var reduceBias: UnsafeMutableBufferPointer<Float>
        public var expandWeight: UnsafeMutableBufferPointer<Float>
        public var expandBias: UnsafeMutableBufferPointer<Float>
        public init(reduceWeight: UnsafeMutableBufferPointer<Float>, reduceBias: UnsafeMutableBufferPointer<Float>,
                    expandWeight: UnsafeMutableBufferPointer<Float>, expandBias: UnsafeMutableBufferPointer<Float>) {
            self.reduceWeight = reduceWeight
            self.reduceBias = reduceBias
            self.expandWeight = expandWeight
            self.expandBias = expandBias
        }
    }

    /// Floats of the `saved` buffer: `n · (3c + mid)` (pooled, z, s: `[n,c]`; r: `[n,mid]`).
    public static func savedCount(n: Int, c: Int, mid: Int) -> Int { n * (3 * c + mid) }

    /// `y = x · s`; `y` may alias `x` only if backward is not needed (backward reads x).
    public static func forward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4, mid: Int,
        parameters pr: Parameters, saved: UnsafeMutableBufferPointer<Float>,
        y: UnsafeMutableBufferPointer<Float>
    ) {
        let n = shape.n, c = shape.c
        requireCount(x, shape.count, "x"); requireCount(y, shape.count, "y")
        requireCount(saved, savedCount(n: n, c: c, mid: mid), "saved")
        let pooled = UnsafeMutableBufferPointer(rebasing: saved[0..<(n * c)])
        let r = UnsafeMutableBufferPointer(rebasing: saved[(n * c)..<(n * (c + mid))])
        let z = UnsafeMutableBufferPointer(rebasing: saved[(n * (c + mid))..<(n * (2 * c + mid))])
        let s = UnsafeMutableBufferPointer(rebasing: saved[(n * (2 * c + mid))..<(n * (3 * c + mid))])
        GlobalAvgPool.forward(ctx, x: x, shape: shape, y: pooled)
        let vec = Shape4(n: n, h: 1, w: 1, c: c)
        PointwiseConv.forward(ctx, x: UnsafeBufferPointer(pooled), shape: vec, weight: pr.reduceWeight,
                              slice: pr.reduceSlice(c: c, mid: mid), bias: pr.reduceBias, y: r)
        for i in 0..<(n * mid) { r[i] = max(r[i], 0) }
        PointwiseConv.forward(ctx, x: UnsafeBufferPointer(r), shape: vec.with(c: mid), weight: pr.expandWeight,
                              slice: pr.expandSlice(c: c, mid: mid), bias: pr.expandBias, y: z)
        Activation.hsigmoid.forward(ctx, x: UnsafeBufferPointer(z), y: s, count: n * c)
        scale(ctx, x.base, shape, s.base, y.base)
    }

    /// `y[n,p,c] = x[n,p,c] · s[n,c]`.
    private static func scale(_ ctx: ComputeContext, _ x: UnsafePointer<Float>, _ shape: Shape4,
                              _ s: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let c = shape.c, hw = shape.h * shape.w
        ctx.parallelChunks(shape.n, minChunk: max(1, 16384 / max(1, shape.sampleCount))) { _, samples in
            for n in samples {
                let sv = s + n * c
                for p in 0..<hw {
                    let o = (n * hw + p) * c
                    var ch = 0
                    while ch + 8 <= c { store8(load8(x + o + ch) * load8(sv + ch), y + o + ch); ch += 8 }
                    while ch < c { y[o + ch] = x[o + ch] * sv[ch]; ch += 1 }
                }
            }
        }
    }

    /// Backward: `dx` overwritten (may alias `dy`), parameter gradients accumulated.
    ///   `ds[n,c] = Σ_p dy·x`, `dz = ds · hsigmoid'(z)`, `dr = (dz · We) ⊙ [r > 0]`,
    ///   `dpooled = dr · Wr`, `dx = dy · s + dpooled / (h·w)`.
    public static func backward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4, mid: Int,
        parameters pr: Parameters, saved: UnsafeBufferPointer<Float>,
        dy: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>,
        gradients gr: Gradients
    ) {
        let n = shape.n, c = shape.c, hw = shape.h * shape.w
        requireCount(x, shape.count, "x"); requireCount(dy, shape.count, "dy"); requireCount(dx, shape.count, "dx")
        requireCount(saved, savedCount(n: n, c: c, mid: mid), "saved")
        requireCount(gr.expandBias, c, "expand bias gradient"); requireCount(gr.reduceBias, mid, "reduce bias gradient")
        let pooled = UnsafeBufferPointer(rebasing: saved[0..<(n * c)])
        let r = UnsafeBufferPointer(rebasing: saved[(n * c)..<(n * (c + mid))])
        let z = UnsafeBufferPointer(rebasing: saved[(n * (c + mid))..<(n * (2 * c + mid))])
        let s = UnsafeBufferPointer(rebasing: saved[(n * (2 * c + mid))..<(n * (3 * c + mid))])
        // Scratch: ds/dz [n,c] | dr [n,mid] | dpooled [n,c]. Taken before any call that
        // uses the workspace itself, and those calls (PointwiseConv without bias
        // gradient, Activation) do not touch it; the bias gradients use ColumnSums,
        // which does, so they are summed here directly.
        let scratch = UnsafeMutableBufferPointer<Float>(start: ctx.workspace.floats(n * (2 * c + mid)), count: n * (2 * c + mid))
        let ds = UnsafeMutableBufferPointer(rebasing: scratch[0..<(n * c)])
        let dr = UnsafeMutableBufferPointer(rebasing: scratch[(n * c)..<(n * (c + mid))])
        let dpooled = UnsafeMutableBufferPointer(rebasing: scratch[(n * (c + mid))..<(n * (2 * c + mid))])
        let xp = x.base, gp = dy.base
        for b in 0..<n {
            let acc = ds.base + b * c
            acc.update(repeating: 0, count: c)
            for p in 0..<hw {
                let o = (b * hw + p) * c
                var ch = 0
                while ch + 8 <= c { store8(load8(acc + ch).addingProduct(load8(gp + o + ch), load8(xp + o + ch)), acc + ch); ch += 8 }
                while ch < c { acc[ch] += gp[o + ch] * xp[o + ch]; ch += 1 }
            }
        }
        Activation.hsigmoid.backward(ctx, x: z, dy: UnsafeBufferPointer(ds), dx: ds, count: n * c)  // ds := dz
        let vec = Shape4(n: n, h: 1, w: 1, c: c)
        PointwiseConv.backward(ctx, x: r, shape: vec.with(c: mid), weight: pr.expandWeight,
                               slice: pr.expandSlice(c: c, mid: mid), dy: UnsafeBufferPointer(ds),
                               dx: dr, dWeight: gr.expandWeight)
        for b in 0..<n { for ch in 0..<c { gr.expandBias[ch] += ds[b * c + ch] } }
        for i in 0..<(n * mid) where r[i] <= 0 { dr[i] = 0 }
        PointwiseConv.backward(ctx, x: pooled, shape: vec, weight: pr.reduceWeight,
                               slice: pr.reduceSlice(c: c, mid: mid), dy: UnsafeBufferPointer(dr),
                               dx: dpooled, dWeight: gr.reduceWeight)
        for b in 0..<n { for j in 0..<mid { gr.reduceBias[j] += dr[b * mid + j] } }
        let inv = 1 / Float(hw)
        let dp = dx.base, sp = s.base, dpp = dpooled.base
        ctx.parallelChunks(n, minChunk: max(1, 16384 / max(1, shape.sampleCount))) { _, samples in
            for b in samples {
                for p in 0..<hw {
                    let o = (b * hw + p) * c
                    for ch in 0..<c { dp[o + ch] = gp[o + ch] * sp[b * c + ch] + dpp[b * c + ch] * inv }
                }
            }
        }
    }
}
