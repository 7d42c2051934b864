/// 1x1 convolution, stride 1, as one GEMM over pixels (no im2col), with an optional
/// bias; also the fully connected layer (`Linear`) and the SE convolutions.
///
/// Shapes (NHWC, `M = n*h*w` pixels):
///   x `[M, cin]`, weight slice `W[:cout, :cin]` of the full OIHW buffer
///   `[outMax, inMax, 1, 1]`, bias `[:cout]` of `[outMax]`, y `[M, cout]`.
///
/// Forward:  `y = x · Wᵀ + b`, read in place from the full weight with `ldb = inMax`.
/// Backward: `dx = dy · W` (overwritten), `dW += dyᵀ · x` written in place into the
/// full-size gradient buffer with `ldc = inMax`, `db += Σ_rows dy`.
///
/// Results equal the naive triple loop up to float summation order (relative error
/// of order `sqrt(cin) * 2^-24` per output; the tests bound it by 1e-4).
public enum PointwiseConv {
    /// `y[M, cout] = x[M, cin] · W[:cout, :cin]ᵀ (+ bias[:cout])`, then `epilogue` (if
    /// given) on the result.
    /// - Parameters:
    ///   - shape: input shape; `shape.c` must equal `slice.cin`.
    ///   - slice: the used part of the weight; `kMax` must be 1.
    ///   - epilogue: run on each tile of output right after its GEMM.
    ///
    /// With enough rows for every worker to have a whole tile, each worker runs its rows
    /// as tiles of about 512 KB of output (`outputTileRows`), a GEMM and then the
    /// epilogue (if any) on each while it is in cache. Without an epilogue the tiles still
    /// pay: OpenBLAS zeroes C for beta 0 and then reads and writes it again, which on one
    /// large output goes to memory three times instead of once (calibration's 1x1
    /// convolutions at 224 px, batch 256: 12% less time). With fewer rows, one GEMM (split
    /// by `Gemm`) and then one parallel epilogue pass.
    public static func forward(
        _ ctx: ComputeContext,
        x: UnsafeBufferPointer<Float>, shape: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice,
        bias: UnsafeBufferPointer<Float>? = nil,
        epilogue: ChannelAffine? = nil,
        y: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(slice.kMax == 1 && shape.c == slice.cin, "PointwiseConv: shape \(shape) does not match slice \(slice)")
        let m = shape.pixels, cout = slice.cout, cin = slice.cin
        requireCount(x, shape.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(y, m * cout, "y")
        if let bias { requireCount(bias, cout, "bias") }
        if let epilogue { precondition(epilogue.channels == cout, "PointwiseConv: epilogue of \(epilogue.channels) channels, output has \(cout)") }
        let yp = y.base, xp = x.base, bp = bias?.base
        func fillBias(_ rows: Range<Int>) {
            guard let bp else { return }
            for r in rows { (yp + r * cout).update(from: bp, count: cout) }
        }
        // `x · Wᵀ`, or with 9-24 output channels `x · T` on the weight slice transposed into
        // the workspace, `T[cin, cout]`, which the narrow kernels run (Gemm).
        let beta: Float = bias == nil ? 0 : 1
        var wp = weight.base, ldw = slice.inMax, transposed = false
        if Gemm.isNarrow(ctx.vectorISA, transA: false, transB: false, n: cout, beta: beta) {
            let t = ctx.workspace.floats(cin * cout)
            for o in 0..<cout {
                for i in 0..<cin { t[i * cout + o] = wp[o * ldw + i] }
            }
            wp = UnsafePointer(t)
            ldw = cout
            transposed = true
        }
        let tile = outputTileRows(cout: cout)
        guard m >= tile * ctx.workers else {
            fillBias(0..<m)
            Gemm.sgemm(ctx, transA: false, transB: !transposed, m: m, n: cout, k: cin,
                       a: xp, lda: cin, b: wp, ldb: ldw, beta: beta, c: yp, ldc: cout)
            if let epilogue {
                ctx.parallelChunks(m, minChunk: max(1, 16384 / max(cout, 1))) { _, rows in
                    epilogue.apply(yp + rows.lowerBound * cout, rows: rows.count, isa: ctx.vectorISA)
                }
            }
            return
        }
        forEachTile(ctx, rows: m, tile: tile) { p, n in
            fillBias(p..<(p + n))
            Gemm.sgemm(.serial, vectorISA: ctx.vectorISA, transA: false, transB: !transposed, m: n, n: cout, k: cin,
                       a: xp + p * cin, lda: cin, b: wp, ldb: ldw, beta: beta, c: yp + p * cout, ldc: cout)
            epilogue?.apply(yp + p * cout, rows: n, isa: ctx.vectorISA)
        }
    }

    /// Rows `0..<rows` split over the workers, each worker's share in tiles of at most
    /// `tile` rows: `body(first row, row count)` per tile, on the worker's thread.
    private static func forEachTile(_ ctx: ComputeContext, rows: Int, tile: Int, _ body: (Int, Int) -> Void) {
        ctx.parallelChunks(rows, minChunk: tile, align: 16) { _, share in
            var p = share.lowerBound
            while p < share.upperBound {
                let n = min(tile, share.upperBound - p)
                body(p, n)
                p += n
            }
        }
    }

    /// Rows of one output tile: about 512 KB of output (half of this VM's L2 per core), a
    /// multiple of 16 rows in 32...8192. Measured (BENCHMARKS.md "Inference"): tiles of
    /// 128 KB, at most 1,024 rows, ran 3-6% slower than no fusion (many small GEMM calls
    /// on narrow layers); 512 KB and 1 MB tiles were level with it or faster.
    static func outputTileRows(cout: Int) -> Int {
        min(8192, max(32, 131_072 / max(cout, 1) / 16 * 16))
    }

    /// Backward pass. `dx` (if given) is overwritten with `dy · W`, or with
    /// `accumulateDx` gets `dy · W` added (GEMM beta 1: a tensor read by two layers
    /// sums its gradients without a separate add pass); `dWeight` (full size, same
    /// layout as `weight`) and `dBias` (`[outMax]`) are accumulated into.
    public static func backward(
        _ ctx: ComputeContext,
        x: UnsafeBufferPointer<Float>, shape: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice,
        dy: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?,
        accumulateDx: Bool = false,
        dWeight: UnsafeMutableBufferPointer<Float>?,
        dBias: UnsafeMutableBufferPointer<Float>? = nil
    ) {
        precondition(slice.kMax == 1 && shape.c == slice.cin, "PointwiseConv: shape \(shape) does not match slice \(slice)")
        let m = shape.pixels, cout = slice.cout, cin = slice.cin
        requireCount(x, shape.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(dy, m * cout, "dy")
        if let dx {
            requireCount(dx, shape.count, "dx")
            // In output tiles, as forward, for the same reason.
            let tile = outputTileRows(cout: cin)
            if m >= tile * ctx.workers {
                let dyp = dy.base, wp = weight.base, dxp = dx.base
                forEachTile(ctx, rows: m, tile: tile) { p, n in
                    Gemm.sgemm(.serial, vectorISA: ctx.vectorISA, transA: false, transB: false, m: n, n: cin, k: cout,
                               a: dyp + p * cout, lda: cout, b: wp, ldb: slice.inMax,
                               beta: accumulateDx ? 1 : 0, c: dxp + p * cin, ldc: cin)
                }
            } else {
                Gemm.sgemm(ctx, transA: false, transB: false, m: m, n: cin, k: cout,
                           a: dy.base, lda: cout, b: weight.base, ldb: slice.inMax,
                           beta: accumulateDx ? 1 : 0, c: dx.base, ldc: cin)
            }
        }
        if let dWeight {
            requireCount(dWeight, slice.fullCount, "dWeight")
            Gemm.sgemm(ctx, transA: true, transB: false, m: cout, n: cin, k: m,
                       a: dy.base, lda: cout, b: x.base, ldb: cin,
                       beta: 1, c: dWeight.base, ldc: slice.inMax)
        }
        if let dBias {
            requireCount(dBias, cout, "dBias")
            ColumnSums.accumulate(ctx, dy.base, rows: m, cols: cout, into: dBias.base)
        }
    }
}

/// Fully connected layer on `[n, in]` rows, PyTorch `F.linear` with weight `[out, inMax]`
/// (first `inFeatures` columns used, i.e. input-feature prefix slicing) and bias
/// `[out]`: `y = x · W[:, :in]ᵀ + b`. Same formulas and tolerances as `PointwiseConv`,
/// of which it is the `h = w = 1` case.
public enum Linear {
    /// - Parameters: `x` `[n, inFeatures]`, `y` `[n, outFeatures]`.
    public static func forward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, n: Int, inFeatures: Int,
        weight: UnsafeBufferPointer<Float>, outFeatures: Int, inMax: Int,
        bias: UnsafeBufferPointer<Float>?, y: UnsafeMutableBufferPointer<Float>
    ) {
        PointwiseConv.forward(ctx, x: x, shape: Shape4(n: n, h: 1, w: 1, c: inFeatures), weight: weight,
                              slice: ConvWeightSlice(outMax: outFeatures, inMax: inMax, cout: outFeatures, cin: inFeatures),
                              bias: bias, y: y)
    }

    /// `dx` overwritten (if given); `dWeight` `[out, inMax]` and `dBias` `[out]` accumulated.
    public static func backward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, n: Int, inFeatures: Int,
        weight: UnsafeBufferPointer<Float>, outFeatures: Int, inMax: Int,
        dy: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>?,
        dWeight: UnsafeMutableBufferPointer<Float>?, dBias: UnsafeMutableBufferPointer<Float>?
    ) {
        PointwiseConv.backward(ctx, x: x, shape: Shape4(n: n, h: 1, w: 1, c: inFeatures), weight: weight,
                               slice: ConvWeightSlice(outMax: outFeatures, inMax: inMax, cout: outFeatures, cin: inFeatures),
                               dy: dy, dx: dx, dWeight: dWeight, dBias: dBias)
    }
}

/// Column sums of a row-major `[rows, cols]` matrix added into `out[0..<cols]`,
/// accumulated in Double per column.
enum ColumnSums {
    static func accumulate(_ ctx: ComputeContext, _ a: UnsafePointer<Float>, rows: Int, cols: Int,
                           into out: UnsafeMutablePointer<Float>) {
        let acc = ctx.workspace.split(doubles: cols, floats: 0).0
        acc.initialize(repeating: 0, count: cols)
        for r in 0..<rows {
            let row = a + r * cols
            for j in 0..<cols { acc[j] += Double(row[j]) }
        }
        for j in 0..<cols { out[j] += Float(acc[j]) }
    }
}
