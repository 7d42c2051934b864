import CVectorKernels

/// Dense k x k convolution (groups 1), stride 1 or 2, 'same' padding `p = k / 2`,
/// no bias: im2col into a reused workspace plus GEMM (darknet style). Used for the
/// stem (cin = 3); a 1x1 stride-1 convolution should use `PointwiseConv`, which
/// skips im2col.
///
/// Shapes: x `[n, h, w, cin]`, y `[n, ho, wo, cout]` with
/// `ho = floor((h + 2p - k) / s) + 1` (same for w); weight slice
/// `W[:cout, :cin, centre k x k]` of OIHW `[outMax, inMax, kMax, kMax]`.
///
///   `y[n,oh,ow,o] = Σ_{kh,kw,i} x[n, oh*s-p+kh, ow*s-p+kw, i] · W[o,i,kh,kw]`
/// (out-of-range input pixels are zero).
///
/// Implementation: the slice is repacked (only the small slice is copied) to
/// `Wp[cout, k*k*cin]` in `(kh, kw, i)` order; blocks of output pixels are unrolled
/// into columns `col[rows, k*k*cin]` and multiplied, `y = col · Wpᵀ`. Work is split
/// over samples, each worker with its own column block. Backward recomputes the
/// columns from x (nothing extra is saved by forward):
/// `dWp += dyᵀ · col` (per-worker partials, then scattered into the full gradient),
/// `dcol = dy · Wp` scattered back (col2im) into dx.
///
/// Forward with few taps (`k*k*cin <= directTaps`: the stem's 3x3x3) skips im2col and
/// the GEMM, whose 27-deep products spent more time packing than multiplying: a direct
/// loop (`vk_small_conv_row_avx2`) over output rows, each reading `k` zero-bordered input
/// rows, with the weight packed `[k*k*cin, cout]`.
public enum Conv2D {
    /// Most taps (`k*k*cin`) the direct forward takes; more go to im2col and GEMM.
    public static let directTaps = 32
    /// Output shape for input `x`.
    public static func outputShape(_ x: Shape4, slice: ConvWeightSlice, stride: Int) -> Shape4 {
        ConvGeometry.sameOutput(x, kernel: slice.k, stride: stride, cout: slice.cout)
    }

    private static func blockRows(_ kk: Int) -> Int { max(32, (1 << 15) / max(kk, 1)) }

    /// Repacks the weight slice into `wp[cout, k*k*cin]` in `(kh, kw, i)` order.
    private static func pack(_ w: UnsafePointer<Float>, _ sl: ConvWeightSlice, _ wp: UnsafeMutablePointer<Float>) {
        let k = sl.k, cin = sl.cin, kk = k * k * cin
        for o in 0..<sl.cout {
            for i in 0..<cin {
                for kh in 0..<k {
                    for kw in 0..<k { wp[o * kk + (kh * k + kw) * cin + i] = w[sl.index(o, i, kh, kw)] }
                }
            }
        }
    }

    /// Unrolls output pixels `p0..<p0+rows` (flattened over `n*ho*wo`) into `col`.
    private static func im2col(_ x: UnsafePointer<Float>, _ xs: Shape4, _ ys: Shape4, k: Int, stride: Int,
                               p0: Int, rows: Int, _ col: UnsafeMutablePointer<Float>) {
        let cin = xs.c, pad = k / 2, kk = k * k * cin
        for r in 0..<rows {
            let p = p0 + r
            let ow = p % ys.w, oh = (p / ys.w) % ys.h, n = p / (ys.w * ys.h)
            var dst = col + r * kk
            for kh in 0..<k {
                let ih = oh * stride - pad + kh
                for kw in 0..<k {
                    let iw = ow * stride - pad + kw
                    if ih >= 0 && ih < xs.h && iw >= 0 && iw < xs.w {
                        dst.update(from: x + ((n * xs.h + ih) * xs.w + iw) * cin, count: cin)
                    } else {
                        dst.update(repeating: 0, count: cin)
                    }
                    dst += cin
                }
            }
        }
    }

    /// Adds columns `dcol` of output pixels `p0..<p0+rows` back into `dx` (col2im).
    private static func col2im(_ dcol: UnsafePointer<Float>, _ xs: Shape4, _ ys: Shape4, k: Int, stride: Int,
                               p0: Int, rows: Int, _ dx: UnsafeMutablePointer<Float>) {
        let cin = xs.c, pad = k / 2, kk = k * k * cin
        for r in 0..<rows {
            let p = p0 + r
            let ow = p % ys.w, oh = (p / ys.w) % ys.h, n = p / (ys.w * ys.h)
            var src = dcol + r * kk
            for kh in 0..<k {
                let ih = oh * stride - pad + kh
                for kw in 0..<k {
                    let iw = ow * stride - pad + kw
                    if ih >= 0 && ih < xs.h && iw >= 0 && iw < xs.w {
                        let d = dx + ((n * xs.h + ih) * xs.w + iw) * cin
                        for i in 0..<cin { d[i] += src[i] }
                    }
                    src += cin
                }
            }
        }
    }

    /// `y = conv(x, W slice)`; see the type's documentation. `epilogue` (if given) runs
    /// on each block of output rows right after its GEMM, while the block is in cache.
    public static func forward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice, stride: Int,
        epilogue: ChannelAffine? = nil,
        y: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(xs.c == slice.cin && (stride == 1 || stride == 2) && slice.k % 2 == 1,
                     "Conv2D: bad shape \(xs) / slice \(slice) / stride \(stride)")
        let ys = outputShape(xs, slice: slice, stride: stride)
        requireCount(x, xs.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(y, ys.count, "y")
        let k = slice.k, cout = slice.cout, kk = k * k * xs.c
        if let epilogue { precondition(epilogue.channels == cout, "Conv2D: epilogue of \(epilogue.channels) channels, output has \(cout)") }
        if kk <= directTaps {
            forwardDirect(ctx, x: x.base, shape: xs, output: ys, weight: weight.base, slice: slice, stride: stride,
                          epilogue: epilogue, y: y.base)
            return
        }
        let block = blockRows(kk), workers = ctx.workers
        let ws = ctx.workspace.floats(cout * kk + workers * block * kk)
        pack(weight.base, slice, ws)
        let xp = x.base, yp = y.base
        let perSample = ys.h * ys.w
        ctx.parallelChunks(xs.n) { wi, samples in
            let col = ws + cout * kk + wi * block * kk
            var p = samples.lowerBound * perSample
            let end = samples.upperBound * perSample
            while p < end {
                let rows = min(block, end - p)
                im2col(xp, xs, ys, k: k, stride: stride, p0: p, rows: rows, col)
                Gemm.sgemm(.serial, transA: false, transB: true, m: rows, n: cout, k: kk,
                           a: col, lda: kk, b: ws, ldb: kk, beta: 0, c: yp + p * cout, ldc: cout)
                epilogue?.apply(yp + p * cout, rows: rows, isa: ctx.vectorISA)
                p += rows
            }
        }
    }

    /// The direct forward: output rows split over the workers; per row, the `k` input rows
    /// it reads are copied into a zero-bordered patch, the C loop computes the row, and
    /// the epilogue runs on it while it is in cache.
    private static func forwardDirect(
        _ ctx: ComputeContext, x: UnsafePointer<Float>, shape xs: Shape4, output ys: Shape4,
        weight: UnsafePointer<Float>, slice: ConvWeightSlice, stride: Int, epilogue: ChannelAffine?,
        y: UnsafeMutablePointer<Float>
    ) {
        let k = slice.k, cin = xs.c, cout = slice.cout, pad = k / 2
        let taps = k * k * cin, coutPad = (cout + 7) / 8 * 8
        let patchStride = (xs.w + 2 * pad) * cin, patchCount = k * patchStride
        let ws = ctx.workspace.floats(taps * coutPad + ctx.workers * patchCount)
        ws.update(repeating: 0, count: taps * coutPad)
        for o in 0..<cout {
            for i in 0..<cin {
                for kh in 0..<k {
                    for kw in 0..<k { ws[((kh * k + kw) * cin + i) * coutPad + o] = weight[slice.index(o, i, kh, kw)] }
                }
            }
        }
        let rowFloats = ys.w * cout
        ctx.parallelChunks(xs.n * ys.h, minChunk: max(1, 4096 / max(1, rowFloats))) { wi, rows in
            let patch = ws + taps * coutPad + wi * patchCount
            patch.update(repeating: 0, count: patchCount)
            for r in rows {
                let n = r / ys.h, oh = r % ys.h
                for kh in 0..<k {
                    let ih = oh * stride - pad + kh, dst = patch + kh * patchStride + pad * cin
                    if ih >= 0 && ih < xs.h {
                        dst.update(from: x + ((n * xs.h + ih) * xs.w) * cin, count: xs.w * cin)
                    } else {
                        dst.update(repeating: 0, count: xs.w * cin)
                    }
                }
                let out = y + r * rowFloats
                vk_small_conv_row_avx2(patch, patchStride, ws, Int32(k), Int32(cin), Int32(stride), Int32(cout),
                                       Int32(ys.w), out)
                epilogue?.apply(out, rows: ys.w, isa: ctx.vectorISA)
            }
        }
    }

    /// Backward pass: `dx` (if given) overwritten, `dWeight` (full size) accumulated.
    public static func backward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice, stride: Int,
        dy: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?, dWeight: UnsafeMutableBufferPointer<Float>?
    ) {
        precondition(xs.c == slice.cin && (stride == 1 || stride == 2) && slice.k % 2 == 1,
                     "Conv2D: bad shape \(xs) / slice \(slice) / stride \(stride)")
        let ys = outputShape(xs, slice: slice, stride: stride)
        requireCount(x, xs.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(dy, ys.count, "dy")
        if let dx { requireCount(dx, xs.count, "dx") }
        if let dWeight { requireCount(dWeight, slice.fullCount, "dWeight") }
        if dx == nil && dWeight == nil { return }
        let k = slice.k, cout = slice.cout, kk = k * k * xs.c
        let block = blockRows(kk), workers = ctx.workers
        // Layout: Wp | per worker: col block | dWp partial.
        let per = block * kk + cout * kk
        let ws = ctx.workspace.floats(cout * kk + workers * per)
        pack(weight.base, slice, ws)
        let xp = x.base, dyp = dy.base, dxp = dx?.base
        let wantW = dWeight != nil
        let perSample = ys.h * ys.w
        let used = ctx.parallelChunks(xs.n) { wi, samples in
            let col = ws + cout * kk + wi * per
            let dwp = col + block * kk
            if wantW { dwp.update(repeating: 0, count: cout * kk) }
            if let dxp {
                (dxp + samples.lowerBound * xs.sampleCount).update(repeating: 0, count: samples.count * xs.sampleCount)
            }
            var p = samples.lowerBound * perSample
            let end = samples.upperBound * perSample
            while p < end {
                let rows = min(block, end - p)
                if wantW {
                    im2col(xp, xs, ys, k: k, stride: stride, p0: p, rows: rows, col)
                    Gemm.sgemm(.serial, transA: true, transB: false, m: cout, n: kk, k: rows,
                               a: dyp + p * cout, lda: cout, b: col, ldb: kk, beta: 1, c: dwp, ldc: kk)
                }
                if let dxp {
                    Gemm.sgemm(.serial, transA: false, transB: false, m: rows, n: kk, k: cout,
                               a: dyp + p * cout, lda: cout, b: ws, ldb: kk, beta: 0, c: col, ldc: kk)
                    col2im(col, xs, ys, k: k, stride: stride, p0: p, rows: rows, dxp)
                }
                p += rows
            }
        }
        guard let dWeight else { return }
        let dw = dWeight.base
        for o in 0..<cout {
            for i in 0..<xs.c {
                for kh in 0..<k {
                    for kw in 0..<k {
                        let j = o * kk + (kh * k + kw) * xs.c + i
                        var s: Float = 0
                        for wi in 0..<used { s += ws[cout * kk + wi * per + block * kk + j] }
                        dw[slice.index(o, i, kh, kw)] += s
                    }
                }
            }
        }
    }
}
