/// Dropout: `y = x · mask`, `mask[i] = 0` with probability `p`, else `1 / (1 - p)`
/// (PyTorch's inverted dropout). The mask comes from the caller's seeded generator
/// and is saved for backward: `dx = dy · mask`.
public enum Dropout {
    /// Fills `mask[0..<count]` and writes `y`; `y` may alias `x`. `p` in [0, 1).
    public static func forward<G: RandomNumberGenerator>(
        x: UnsafeBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>,
        mask: UnsafeMutableBufferPointer<Float>, count: Int, p: Float, rng: inout G
    ) {
        precondition(p >= 0 && p < 1, "Dropout: p \(p) outside [0, 1)")
        requireCount(x, count, "x"); requireCount(y, count, "y"); requireCount(mask, count, "mask")
        let scale = 1 / (1 - p)
        for i in 0..<count {
            let u = Float(rng.next() >> 40) * 0x1p-24
            mask[i] = u < p ? 0 : scale
            y[i] = x[i] * mask[i]
        }
    }

    /// `dx = dy · mask` (overwritten; may alias `dy`).
    public static func backward(dy: UnsafeBufferPointer<Float>, mask: UnsafeBufferPointer<Float>,
                                dx: UnsafeMutableBufferPointer<Float>, count: Int) {
        requireCount(dy, count, "dy"); requireCount(mask, count, "mask"); requireCount(dx, count, "dx")
        for i in 0..<count { dx[i] = dy[i] * mask[i] }
    }
}

/// Per-sample drop-connect (stochastic depth) of the official `drop_connect`:
/// `keep = 1 - p`; per sample `b = floor(keep + U[0,1))`; `y = x / keep · b`.
/// The per-sample factor `b / keep` is saved in `factors[n]` for backward.
public enum DropConnect {
    /// `y` may alias `x`.
    public static func forward<G: RandomNumberGenerator>(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4,
        y: UnsafeMutableBufferPointer<Float>, factors: UnsafeMutableBufferPointer<Float>,
        p: Float, rng: inout G
    ) {
        precondition(p >= 0 && p < 1, "DropConnect: p \(p) outside [0, 1)")
        requireCount(x, shape.count, "x"); requireCount(y, shape.count, "y"); requireCount(factors, shape.n, "factors")
        let keep = 1 - p
        for n in 0..<shape.n {
            let u = Float(rng.next() >> 40) * 0x1p-24
            let b = (keep + u).rounded(.down)
            factors[n] = b  // stored as the binary value; scaling applied below as x / keep · b
        }
        let xp = x.base, yp = y.base, fp = factors.base, per = shape.sampleCount
        ctx.parallelChunks(shape.n) { _, samples in
            for n in samples {
                let b = fp[n]
                for i in (n * per)..<((n + 1) * per) { yp[i] = xp[i] / keep * b }
            }
        }
        for n in 0..<shape.n { factors[n] = factors[n] / keep }
    }

    /// `dx = dy · factor[n]` (overwritten; may alias `dy`).
    public static func backward(_ ctx: ComputeContext, dy: UnsafeBufferPointer<Float>, shape: Shape4,
                                factors: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>) {
        requireCount(dy, shape.count, "dy"); requireCount(dx, shape.count, "dx"); requireCount(factors, shape.n, "factors")
        let gp = dy.base, dp = dx.base, fp = factors.base, per = shape.sampleCount
        ctx.parallelChunks(shape.n) { _, samples in
            for n in samples {
                let f = fp[n]
                for i in (n * per)..<((n + 1) * per) { dp[i] = gp[i] * f }
            }
        }
    }
}

/// Elementwise helpers for residual connections.
public enum Elementwise {
    /// `y = a + b` (forward of a residual add; `y` may alias `a` or `b`). Its backward
    /// is the identity for both inputs: pass `dy` on, or `addInPlace` it.
    public static func add(_ ctx: ComputeContext, _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
                           into y: UnsafeMutableBufferPointer<Float>, count: Int) {
        requireCount(a, count, "a"); requireCount(b, count, "b"); requireCount(y, count, "y")
        let ap = a.base, bp = b.base, yp = y.base
        ctx.parallelChunks(count, minChunk: 1 << 15, align: 8) { _, r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(load8(ap + i) + load8(bp + i), yp + i); i += 8 }
            while i < r.upperBound { yp[i] = ap[i] + bp[i]; i += 1 }
        }
    }

    /// `y += a`.
    public static func addInPlace(_ ctx: ComputeContext, _ a: UnsafeBufferPointer<Float>,
                                  into y: UnsafeMutableBufferPointer<Float>, count: Int) {
        add(ctx, a, UnsafeBufferPointer(y), into: y, count: count)
    }
}
