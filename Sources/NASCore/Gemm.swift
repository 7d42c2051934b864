import COpenBLAS
import CVectorKernels

/// Row-major single-precision GEMM, `C = alpha * op(A) * op(B) + beta * C`, the one
/// wrapper of `cblas_sgemm` in the module.
///
/// `op(A)` is `m x k` (A stored `[m, lda]`, or `[k, lda]` when `transA`), `op(B)` is
/// `k x n` (B stored `[k, ldb]`, or `[n, ldb]` when `transB`), C is `[m, ldc]`.
/// Leading dimensions larger than the logical width address a slice of a bigger
/// matrix in place (the supernet's weight slicing).
///
/// With a `ComputeContext` of several workers and enough work, the product is split
/// into independent blocks of C rows (or columns when `n > m`), each one
/// single-threaded `cblas_sgemm`, so the results are the same as one call up to the
/// blocking of the summation inside OpenBLAS; a product whose depth k dwarfs m and n is
/// split along k instead, into partial products summed afterwards.
///
/// Products of 9-24 output columns with alpha 1 and beta 0 or 1 run our narrow kernels
/// instead of OpenBLAS, whose AVX-512 kernels split 17-24 columns as 16 + 8 and ran the
/// 16-column gradients at 29-73% of the peak (BENCHMARKS.md "Kernels"): `A · B` (a 1x1
/// convolution's forward pass on its transposed weight, `PointwiseConv`, and its input
/// gradient) on `vk_sgemm_nn_narrow_avx512` or its AVX2 twin, which give the same bits, so
/// infer's logits do not depend on the `VectorISA`; `Aᵀ · B` (the weight gradient) on
/// `vk_sgemm_tn_narrow_avx512` where the set is AVX-512, OpenBLAS otherwise.
public enum Gemm {
    /// Products below this many multiply-adds run as one call on the calling thread.
    public static let parallelThreshold = 1 << 18
    /// Products with `k` at least this many times `max(m, n)` and an output of at most
    /// `kSplitMaxOutput` floats are split along k (BENCHMARKS.md "Kernels").
    static let kSplitDepth = 32
    static let kSplitMaxOutput = 1 << 16

    /// Where a GEMM runs: split over the context's workers, or on the calling thread
    /// (inside a kernel's own parallel region).
    public enum Threads {
        case parallel(ComputeContext)
        case serial
    }

    public static func sgemm(
        _ context: ComputeContext,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(.parallel(context), vectorISA: context.vectorISA, transA: transA, transB: transB, m: m, n: n, k: k,
              alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// `vectorISA`: the set our narrow kernels use (pass the context's); with `.avx2` the
    /// narrow `Aᵀ · B` stays in OpenBLAS.
    public static func sgemm(
        _ threads: Threads, vectorISA: VectorISA = .avx2,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "Gemm: negative extent")
        precondition(lda >= max(1, transA ? m : k) && ldb >= max(1, transB ? k : n) && ldc >= max(1, n),
                     "Gemm: leading dimension too small")
        if m == 0 || n == 0 { return }
        guard case .parallel(let context) = threads, context.workers > 1, m * n * k >= parallelThreshold else {
            call(vectorISA, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if k >= kSplitDepth * max(m, n) && m * n <= kSplitMaxOutput {
            // A short, wide product (a 1x1 convolution's weight gradient on a large map:
            // k = pixels, m x n = channels): split k, each worker's partial product into a
            // buffer of its own, then C = beta C + their sum. Splitting m or n would have
            // each worker read the whole k-long operand it does not split.
            let parts = context.chunkCount(k, minChunk: 256)
            let partials = UnsafeMutablePointer<Float>.allocate(capacity: parts * m * n)
            defer { partials.deallocate() }
            let used = context.parallelChunks(k, minChunk: 256) { i, r in
                let aOff = transA ? r.lowerBound * lda : r.lowerBound
                let bOff = transB ? r.lowerBound : r.lowerBound * ldb
                call(vectorISA, transA, transB, m, n, r.count, alpha, a + aOff, lda, b + bOff, ldb, 0, partials + i * m * n, n)
            }
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for p in 0..<used { sum += partials[(p * m + i) * n + j] }
                    c[i * ldc + j] = beta == 0 ? sum : beta * c[i * ldc + j] + sum
                }
            }
            return
        }
        if m >= n {
            // Split rows of C: rows of op(A).
            context.parallelChunks(m, minChunk: 16, align: 16) { _, r in
                let aOff = transA ? r.lowerBound : r.lowerBound * lda
                call(vectorISA, transA, transB, r.count, n, k, alpha, a + aOff, lda, b, ldb, beta,
                     c + r.lowerBound * ldc, ldc)
            }
        } else {
            // Split columns of C: columns of op(B).
            context.parallelChunks(n, minChunk: 16, align: 16) { _, r in
                let bOff = transB ? r.lowerBound * ldb : r.lowerBound
                call(vectorISA, transA, transB, m, r.count, k, alpha, a, lda, b + bOff, ldb, beta,
                     c + r.lowerBound, ldc)
            }
        }
    }

    /// Whether `call` runs a product on the narrow kernels.
    static func isNarrow(_ vectorISA: VectorISA, transA: Bool, transB: Bool, n: Int, alpha: Float = 1,
                         beta: Float) -> Bool {
        !transB && (transA ? vectorISA == .avx512 : true) && (9...24).contains(n) && alpha == 1
            && (beta == 0 || beta == 1)
    }

    @inline(__always)
    private static func call(
        _ vectorISA: VectorISA,
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        if k == 0 {
            // BLAS leaves C untouched when k == 0 only for beta == 1; make it explicit.
            for i in 0..<m {
                for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] }
            }
            return
        }
        if isNarrow(vectorISA, transA: transA, transB: transB, n: n, alpha: alpha, beta: beta) {
            switch (transA, vectorISA) {
            case (true, _): vk_sgemm_tn_narrow_avx512(Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta, c, ldc)
            case (false, .avx512): vk_sgemm_nn_narrow_avx512(Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta, c, ldc)
            case (false, .avx2): vk_sgemm_nn_narrow_avx2(Int32(m), Int32(n), Int32(k), a, lda, b, ldb, beta, c, ldc)
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
