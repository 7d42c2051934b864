@testable import NASCore
import Testing

/// The GEMM wrapper's splits against a naive Double product: rows of C (m >= n), columns
/// (n > m) and the depth (k far beyond m and n, a weight gradient's shape), with every
/// transpose, alpha, beta and leading dimensions wider than the operands.
@Suite struct GemmTests {
    /// (m, n, k): split rows, split columns, split k (k >= 32 max(m, n)), and a product
    /// below the parallel threshold.
    static let shapes = [(96, 40, 80), (24, 72, 96), (24, 16, 4096), (40, 9, 2000), (5, 4, 3)]

    @Test(arguments: shapes, [(false, false), (true, false), (false, true), (true, true)])
    func matchesNaiveProduct(_ shape: (Int, Int, Int), _ transposes: (Bool, Bool)) {
        Self.verify(ComputeContext(workers: 2), shape, transposes, [(1, 0), (0.5, 1), (2, -0.75)])
    }

    /// Products of 9-24 columns, `A · B` and `Aᵀ · B`: they run the narrow kernels (checked:
    /// `A · B` with either vector set, `Aᵀ · B` with AVX-512 where the CPU has it), in every
    /// split: rows, below the threshold, k.
    @Test(arguments: [(100, 24, 144), (13, 17, 50), (144, 24, 6000), (37, 20, 9), (64, 16, 5000), (21, 9, 40), (8, 12, 300)],
          [(false, false), (true, false)])
    func narrowProductsMatchNaive(_ shape: (Int, Int, Int), _ transposes: (Bool, Bool)) {
        for isa in VectorISA.allCases.filter(\.isSupported) {
            #expect(Gemm.isNarrow(isa, transA: transposes.0, transB: transposes.1, n: shape.1, alpha: 1, beta: 0)
                    == (!transposes.0 || isa == .avx512))
            Self.verify(ComputeContext(workers: 2, vectorISA: isa), shape, transposes, [(1, 0), (1, 1), (0.5, 1)])
        }
    }

    /// The narrow `A · B` gives the same bits with AVX2 as with AVX-512 (infer's logits rest
    /// on it), for every column count 9-24 (full and masked vectors), row blocks and their
    /// remainders, beta 0 and 1. Skipped, and reported so, where the CPU has no AVX-512 (as
    /// the other tests that compare the two sets): there is nothing to compare.
    @Test(.enabled(if: VectorISA.avx512.isSupported, "the CPU has no AVX-512: the AVX-512 narrow kernel cannot run"))
    func narrowProductIsTheSameWithEitherVectorSet() {
        for n in 9...24 {
            let m = 29, k = 37, lda = k + 2, ldb = n + 3, ldc = n + 1
            let a = randomFloats(m * lda, seed: 4), b = randomFloats(k * ldb, seed: 5), c0 = randomFloats(m * ldc, seed: 6)
            for beta: Float in [0, 1] {
                var results: [[Float]] = []
                for isa in [VectorISA.avx512, .avx2] {
                    var c = c0
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        Gemm.sgemm(.serial, vectorISA: isa, transA: false, transB: false, m: m, n: n, k: k, a: ap.baseAddress!, lda: lda,
                                   b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                    } } }
                    results.append(c)
                }
                #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern), "n=\(n) beta=\(beta)")
                #expect(results[0] != c0)
            }
        }
    }

    static func verify(_ ctx: ComputeContext, _ shape: (Int, Int, Int), _ transposes: (Bool, Bool),
                       _ alphaBetas: [(Float, Float)]) {
        let (m, n, k) = shape, (ta, tb) = transposes
        // Stored shapes with 3 spare columns each: A is [m, k] or [k, m], B [k, n] or [n, k].
        let (aRows, aCols) = ta ? (k, m) : (m, k), (bRows, bCols) = tb ? (n, k) : (k, n)
        let lda = aCols + 3, ldb = bCols + 3, ldc = n + 3
        let a = randomFloats(aRows * lda, seed: 1), b = randomFloats(bRows * ldb, seed: 2)
        for (alpha, beta) in alphaBetas {
            let c0 = randomFloats(m * ldc, seed: 3)
            var c = c0
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Gemm.sgemm(ctx, transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                           b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
            } } }
            var worst = 0.0, scale = 1e-30
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        let av = ta ? a[p * lda + i] : a[i * lda + p], bv = tb ? b[j * ldb + p] : b[p * ldb + j]
                        s += Double(av) * Double(bv)
                    }
                    let want = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                    worst = max(worst, abs(Double(c[i * ldc + j]) - want))
                    scale = max(scale, abs(want))
                }
                // The spare columns of C stay as they were.
                for j in n..<ldc { #expect(c[i * ldc + j] == c0[i * ldc + j]) }
            }
            #expect(worst / scale < 1e-5, "\(ctx.vectorISA) m=\(m) n=\(n) k=\(k) transA=\(ta) transB=\(tb) alpha=\(alpha) beta=\(beta): \(worst / scale)")
        }
    }
}
