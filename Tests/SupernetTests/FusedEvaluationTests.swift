import NASCore
import Supernet
import Testing
import TestSupport

/// Evaluation-mode forward passes apply each BatchNorm inside the convolution before it
/// (`Supernet.fusesNormalization`): the logits equal those of one pass per BN up to the
/// 1x1 convolutions' GEMM summation order (bit-identical where no 1x1 convolution has
/// enough rows to be tiled; `ChannelAffineTests` has the per-kernel bounds), for
/// random subnets of the tiny and the official space (every block kind: expand or not,
/// SE or not, strided and channel-changing shortcuts), for a K-shot supernet, and with
/// the input resized; training and calibration passes are not fused.
@Suite struct FusedEvaluationTests {
    /// Elements that differ in any bit (a count, not two arrays, in a failure message).
    static func differing(_ a: [Float], _ b: [Float]) -> Int {
        zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count + abs(a.count - b.count)
    }

    /// The largest difference relative to max |b|.
    static func relative(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        let scale = max(1e-30, b.map { abs(Double($0)) }.max() ?? 0)
        return zip(a, b).map { abs(Double($0) - Double($1)) }.max().map { $0 / scale } ?? 0
    }

    static func randomArch(_ space: SearchSpace, seed: UInt64, resolution: Int? = nil) -> Arch {
        var rng = SeededRandom(seed: seed)
        func pick(_ c: [Int]) -> Int { c[Int(rng.next() % UInt64(c.count))] }
        return Arch(resolution: resolution ?? pick(space.resolutions), width: space.widthChoices.map(pick),
                    depth: space.depthChoices.map(pick), kernelSize: space.kernelChoices.map(pick),
                    expandRatio: space.expandChoices.map(pick))
    }

    /// A model with non-trivial running statistics and BN affine parameters.
    static func model(_ space: SearchSpace, kshot: KShotConfig? = nil) -> Supernet {
        let w = kshot.map { SupernetInitializer.initialWeights(space: space, seed: 2, kshot: $0) }
            ?? SupernetInitializer.initialWeights(space: space, seed: 2)
        let model = Supernet(weights: w, space: space, context: ComputeContext(workers: 2))
        var rng = SeededRandom(seed: 3)
        for i in model.buffers.indices { model.buffers[i] = 0.25 + rng.uniformFloat() }
        for e in w.layout.entries where e.name.hasSuffix(".bn.bn.weight") || e.name.hasSuffix(".bn.bn.bias") {
            for i in 0..<e.count { model.parameters[e.offset + i] = rng.uniformFloat() * 1.5 - 0.5 }
        }
        return model
    }

    static func logits(_ model: Supernet, _ arch: Arch, size: Int, n: Int = 3, fused: Bool,
                       normalization: NormalizationMode = .runningStatistics) -> [Float] {
        model.fusesNormalization = fused
        var rng = SeededRandom(seed: 4)
        let input = (0..<(n * size * size * 3)).map { _ in rng.uniformFloat() * 4 - 2 }
        var random = SeededRandom(seed: 5)
        return input.withUnsafeBufferPointer {
            model.forward(arch: arch, input: $0, shape: Shape4(n: n, h: size, w: size, c: 3), normalization: normalization,
                          trainable: false, random: &random)
        }
    }

    @Test(arguments: ["tiny", "alphanet"])
    func fusedLogitsEqualSeparatePasses(spaceName: String) throws {
        let space = try SearchSpace(contentsOf: Paths.space(spaceName))
        let model = Self.model(space)
        let small = spaceName == "alphanet" ? 64 : nil  // keeps the official space fast in debug builds
        var archs = [space.minArch, space.maxArch] + (0..<4).map { Self.randomArch(space, seed: UInt64(10 + $0), resolution: small) }
        if let small { for i in 0..<2 { archs[i].resolution = small } }
        // The fusion takes place: an evaluation pass runs no BatchNorm op of its own.
        for fused in [false, true] {
            let profile = OpProfile()
            model.profile = profile
            _ = Self.logits(model, space.maxArch, size: space.maxArch.resolution, fused: fused)
            model.profile = nil
            #expect((profile.forward["batchNorm"] != nil) == !fused, "fused \(fused): \(profile.forward.keys.sorted())")
        }
        for arch in archs {
            let separate = Self.logits(model, arch, size: arch.resolution, fused: false)
            let fused = Self.logits(model, arch, size: arch.resolution, fused: true)
            #expect(separate.allSatisfy { $0.isFinite })
            #expect(Self.relative(fused, separate) <= 1e-5, "\(spaceName) \(arch)")
        }
        // Input at another size (resized by the forward pass), a batch large enough for
        // the 1x1 convolutions' tiled path.
        let arch = Self.randomArch(space, seed: 20, resolution: small)
        let big = spaceName == "alphanet" ? 4 : 40
        let separate = Self.logits(model, arch, size: arch.resolution + 4, n: big, fused: false)
        let fused = Self.logits(model, arch, size: arch.resolution + 4, n: big, fused: true)
        #expect(Self.relative(fused, separate) <= 1e-5, "resized input")
    }

    @Test func kshotFusedLogitsEqualSeparatePasses() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let model = Self.model(space, kshot: KShotConfig(copies: 3))
        for seed in 30..<33 {
            let arch = Self.randomArch(space, seed: UInt64(seed))
            let separate = Self.logits(model, arch, size: arch.resolution, fused: false)
            let fused = Self.logits(model, arch, size: arch.resolution, fused: true)
            #expect(Self.relative(fused, separate) <= 1e-5)
        }
    }

    /// Batch-statistics and calibration passes keep their own BN passes and their whole
    /// batch: neither the fusion nor a limit that would split an evaluation batch into
    /// single images (`evaluationChunkFloats`, `ChunkedEvaluationTests`) changes anything
    /// there (running statistics after calibration included).
    @Test func nonEvaluationPassesAreUnchanged() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let arch = Self.randomArch(space, seed: 40)
        for mode in [NormalizationMode.batchStatistics, .calibration(batchIndex: 1)] {
            let a = Self.model(space), b = Self.model(space)
            b.evaluationChunkFloats = 1
            let la = Self.logits(a, arch, size: arch.resolution, fused: false, normalization: mode)
            let lb = Self.logits(b, arch, size: arch.resolution, fused: true, normalization: mode)
            #expect(Self.differing(la, lb) == 0, "\(mode)")
            #expect(Self.differing(Array(a.buffers), Array(b.buffers)) == 0, "\(mode): running statistics")
        }
    }
}
