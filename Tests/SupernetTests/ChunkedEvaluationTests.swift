import NASCore
@testable import Supernet
import Testing
import TestSupport

/// An evaluation pass runs its batch in chunks (`Supernet.evaluationChunkFloats`), the
/// head once on the whole batch's pooled features: the logits equal the whole batch's up to the GEMMs' rounding (OpenBLAS's kernels round
/// differently with the number of rows: within 1e-5 of the logits' scale, as
/// `FusedEvaluationTests`), with a short last chunk, with the input resized, for both
/// spaces and a K-shot supernet. Calibration and batch-statistics passes are never
/// split (their statistics are the whole batch's): `FusedEvaluationTests`'s
/// `nonEvaluationPassesAreUnchanged` runs them under a limit of one float.
@Suite struct ChunkedEvaluationTests {
    typealias F = FusedEvaluationTests

    /// Logits with chunks of `chunk` images (nil: the whole batch in one pass); expects
    /// the model to choose that chunk size.
    static func logits(_ model: Supernet, _ arch: Arch, size: Int, n: Int, chunk: Int?,
                       normalization: NormalizationMode = .runningStatistics) -> [Float] {
        let limit = model.evaluationChunkFloats
        defer { model.evaluationChunkFloats = limit }
        if let chunk {
            // The largest activation of one image, from the model's own plan of one image.
            let one = model.plan(arch: arch, inShape: Shape4(n: 1, h: size, w: size, c: 3), normalization: normalization,
                                 trainable: false, regularization: .none)
            model.evaluationChunkFloats = one.largestBuffer * chunk
            #expect(model.evaluationChunk(largestBuffer: one.largestBuffer * n, images: n) == chunk)
        } else {
            model.evaluationChunkFloats = .max
        }
        return F.logits(model, arch, size: size, n: n, fused: true, normalization: normalization)
    }

    /// "tiny-kshot": the tiny space's K-shot supernet (3 copies).
    @Test(arguments: ["tiny", "alphanet", "tiny-kshot"])
    func chunkedLogitsEqualTheWholeBatch(spaceName: String) throws {
        let kshot = spaceName.hasSuffix("-kshot")
        let space = try SearchSpace(contentsOf: Paths.space(kshot ? "tiny" : spaceName))
        let model = kshot ? F.model(space, kshot: KShotConfig(copies: 3)) : F.model(space)
        let small = spaceName == "alphanet" ? 64 : nil  // keeps the official space fast in debug builds
        var archs = [space.minArch, space.maxArch] + (0..<2).map { F.randomArch(space, seed: UInt64(50 + $0), resolution: small) }
        if let small { for i in 0..<2 { archs[i].resolution = small } }
        for arch in archs {
            let whole = Self.logits(model, arch, size: arch.resolution, n: 5, chunk: nil)
            #expect(whole.count == 5 * space.nClasses && whole.allSatisfy { $0.isFinite })
            for chunk in [1, 2, 4] {  // 5 = 2 + 2 + 1 and 4 + 1: a short last chunk
                let chunked = Self.logits(model, arch, size: arch.resolution, n: 5, chunk: chunk)
                #expect(F.relative(chunked, whole) <= 1e-5, "\(spaceName) \(arch) in chunks of \(chunk)")
                // The last tape run is the head, once, on all five images' pooled features.
                #expect(model.tape.input.count == 5 * arch.width[7] * 6 && model.tape.logits.count == 5 * space.nClasses)
                #expect(model.tape.ops.allSatisfy { $0.convolutionOutput == nil }, "the head has no convolution")
            }
        }
        // Input at another size, resized by each chunk's pass.
        let arch = F.randomArch(space, seed: 60, resolution: small)
        let whole = Self.logits(model, arch, size: arch.resolution + 4, n: 3, chunk: nil)
        let chunked = Self.logits(model, arch, size: arch.resolution + 4, n: 3, chunk: 2)
        #expect(F.relative(chunked, whole) <= 1e-5, "resized input")
    }
}
