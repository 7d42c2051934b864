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
    /// `y[M, cout] = x[M, cin] · W[:cout, :cin]ᵀ (+ bias[:cout])`.
    /// - Parameters:
    ///   - shape: input shape; `shape.c` must equal `slice.cin`.
    ///   - slice: the used part of the weight; `kMax` must be 1.
    public static func forward(
        _ ctx: ComputeContext,
        x: UnsafeBufferPointer<Float>, shape: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice,
        bias: UnsafeBufferPointer<Float>? = nil,
        y: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(slice.kMax == 1 && shape.c == slice.cin, "PointwiseConv: shape \(shape) does not match slice \(slice)")
        let m = shape.pixels, cout = slice.cout
        requireCount(x, shape.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(y, m * cout, "y")
        if let bias { requireCount(bias, cout, "bias") }
        let yp = y.base
        var beta: Float = 0
        if let bias {
            let bp = bias.base
            for r in 0..<m { (yp + r * cout).update(from: bp, count: cout) }
            beta = 1
        }
        Gemm.sgemm(ctx, transA: false, transB: true, m: m, n: cout, k: slice.cin,
                   a: x.base, lda: slice.cin, b: weight.base, ldb: slice.inMax,
                   beta: beta, c: yp, ldc: cout)
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
            Gemm.sgemm(ctx, transA: false, transB: false, m: m, n: cin, k: cout,
                       a: dy.base, lda: cout, b: weight.base, ldb: slice.inMax,
                       beta: accumulateDx ? 1 : 0, c: dx.base, ldc: cin)
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
