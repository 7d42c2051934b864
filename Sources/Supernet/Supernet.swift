import NASCore
import System

/// How BatchNorm normalises during a forward pass.
public enum NormalizationMode: Sendable, Equatable {
    /// Batch statistics (training; the official dynamic BN). Running statistics
    /// are updated with the space's `bn_momentum` (0 in AlphaNet: left as they are).
    case batchStatistics
    /// Running statistics (evaluation of a static subnet).
    case runningStatistics
    /// BN recalibration: batch statistics, and the running statistics of the
    /// used channels become the cumulative average over the calibration
    /// batches (PyTorch momentum=None; `batchIndex` counts from 1).
    case calibration(batchIndex: Int)
}

/// Regularisation of the official training of the largest subnet.
public struct Regularization: Sendable, Equatable {
    /// Dropout before the classifier.
    public var dropout: Float
    /// Drop-connect rate; block `i` of `B` supernet blocks uses `rate * i / B`.
    public var dropConnect: Float
    /// Apply drop-connect only in the last two stages (official default).
    public var dropConnectOnlyLastTwoStages: Bool

    public init(dropout: Float = 0, dropConnect: Float = 0, dropConnectOnlyLastTwoStages: Bool = true) {
        self.dropout = dropout
        self.dropConnect = dropConnect
        self.dropConnectOnlyLastTwoStages = dropConnectOnlyLastTwoStages
    }

    public static let none = Regularization()
}

/// The AttentiveNAS dynamic supernet: every subnet of a space shares the
/// tensors of `SupernetLayout` (first channels, centre of the largest kernel).
/// `forward` runs one subnet on an NHWC batch and records what `backward`
/// needs; `backward` adds the gradients of that subnet into `gradients`.
///
/// Memory: parameters, gradients and running statistics are allocated once;
/// activations live in a grow-only arena sized by the largest subnet seen, so
/// a training loop stops allocating after its first step.
public final class Supernet {
    public let space: SearchSpace
    public let layout: SupernetLayout
    public let context: ComputeContext
    /// Parameters in the flat layout (`LayoutEntry.offset`).
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// Gradients, same layout as `parameters`; `backward` adds into them.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// BN running statistics in the buffer layout.
    public let buffers: UnsafeMutableBufferPointer<Float>
    public var batchesTracked: [String: Int64]

    /// When set, forward and backward add the wall time of every op to it.
    public var profile: OpProfile?

    /// Evaluation-mode forward passes apply each BatchNorm that follows a convolution
    /// inside that convolution, on its output while in cache (the same results up to the
    /// rounding of tiled 1x1 GEMMs; on by default). Off: one separate pass per BatchNorm
    /// (kept for tests and benchmarks).
    public var fusesNormalization = true

    /// Floats the largest activation of one evaluation chunk may hold (`forward`): 8 Mi,
    /// 32 MiB, this VM's L3. A0 at 224 px, batch 256 (chunks of 10 images): 257-265
    /// images/s against 231-248 for the whole batch at once, same run (BENCHMARKS.md,
    /// "Inference"); A0 at 128 px, batch 64, runs in two chunks of 32.
    public var evaluationChunkFloats = 8 << 20

    /// Synchronised BatchNorm (`--sync-bn`): in batch-statistics passes (training) every
    /// BN normalises with the statistics of all processes' batches, and its backward
    /// with their gradient sums. Nil: each process its own batch (the official default).
    public var batchStatisticsSync: (any BatchNorm.CrossProcessSum)?

    let arena = Arena()
    var tape = Tape()

    /// Offsets (in the parameter layout) of the parameter tensors the last forward pass
    /// used and its backward pass gave a gradient: in a K-shot supernet the copies of
    /// the mixed tensors (not the mixed tensors themselves) and, when it is trained, the
    /// simplex-net.
    public var usedParameterOffsets: [Int] {
        guard let k = layout.kshot else { return tape.parameterOffsets }
        var out: [Int] = []
        for o in tape.parameterOffsets {
            if let i = k.sharedIndex[o] { out += k.shared[i].copyOffsets } else { out.append(o) }
        }
        if trainsSimplexNet { out += k.simplexEntries.map(\.offset) }
        return out
    }

    /// K-shot: whether backward passes give the simplex-net a gradient (false during
    /// the warm-up with uniform codes, and for evaluation).
    public var trainsSimplexNet = false
    /// K-shot: the codes of the subnet whose mixed weights the official tensors hold,
    /// and, per shared tensor, the mix generation it was last mixed in (`mixGeneration`
    /// counts code changes; a tensor is remixed when its tag differs).
    var kshotCodes: (arch: Arch, codes: SimplexCodes)?
    var mixGeneration = 0
    var mixedInGeneration: [Int] = []
    /// Per shared tensor, the region mixed in that generation.
    var mixedRegion: [ConvWeightSlice?] = []

    public init(weights: SupernetWeights, space: SearchSpace, context: ComputeContext) {
        precondition(weights.layout.parameterCount == SupernetLayout(space: space, kshot: weights.layout.kshot?.config).parameterCount, "weights do not fit the space")
        self.space = space
        layout = weights.layout
        self.context = context
        parameters = .allocate(capacity: layout.parameterCount)
        _ = parameters.initialize(from: weights.parameters)
        gradients = .allocate(capacity: layout.parameterCount)
        gradients.initialize(repeating: 0)
        buffers = .allocate(capacity: max(1, layout.bufferCount))
        buffers.initialize(repeating: 0)
        for (i, v) in weights.buffers.enumerated() { buffers[i] = v }
        batchesTracked = weights.batchesTracked
        mixedInGeneration = [Int](repeating: -1, count: layout.kshot?.shared.count ?? 0)
        mixedRegion = [ConvWeightSlice?](repeating: nil, count: layout.kshot?.shared.count ?? 0)
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
        buffers.deallocate()
    }

    /// A copy of the current weights (for checkpoints).
    public var weights: SupernetWeights {
        var w = SupernetWeights(layout: layout)
        w.parameters = Array(parameters)
        w.buffers = Array(buffers.prefix(layout.bufferCount))
        w.batchesTracked = batchesTracked
        return w
    }

    public func zeroGradients() {
        gradients.update(repeating: 0)
    }

    func entry(_ name: String) -> LayoutEntry {
        guard let e = layout[name] else { preconditionFailure("no supernet tensor \(name)") }
        return e
    }

    func param(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        let e = entry(name)
        precondition(e.role.isParameter)
        return UnsafeMutableBufferPointer(rebasing: parameters[e.offset..<(e.offset + e.count)])
    }

    func grad(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        let e = entry(name)
        return UnsafeMutableBufferPointer(rebasing: gradients[e.offset..<(e.offset + e.count)])
    }

    func buffer(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        let e = entry(name)
        precondition(!e.role.isParameter && e.role != .numBatchesTracked)
        return UnsafeMutableBufferPointer(rebasing: buffers[e.offset..<(e.offset + e.count)])
    }

    /// Resets the running statistics of the channels `arch` uses (mean 0,
    /// variance 1), as the official `reset_running_stats()` before calibration.
    public func resetRunningStatistics(for arch: Arch) {
        for (prefix, c) in batchNormUses(arch) {
            let m = buffer("\(prefix).bn.bn.running_mean"), v = buffer("\(prefix).bn.bn.running_var")
            for i in 0..<c { m[i] = 0; v[i] = 1 }
        }
    }

    /// Saves / restores the running statistics (estimate-acc recalibrates a
    /// scratch copy per subnet and leaves the supernet's own untouched).
    public func runningStatistics() -> [Float] { Array(buffers.prefix(layout.bufferCount)) }

    public func setRunningStatistics(_ values: [Float]) {
        precondition(values.count == layout.bufferCount)
        for (i, v) in values.enumerated() { buffers[i] = v }
    }

    /// The BN layers a subnet uses, with their channel counts.
    func batchNormUses(_ arch: Arch) -> [(String, Int)] {
        var out: [(String, Int)] = [("first_conv", arch.width[0])]
        for b in arch.blocks(in: space) {
            let p = layout.blocks[b.index].prefix + ".mobile_inverted_conv"
            let mid = b.hasExpand ? b.midChannels : b.inChannels
            if b.hasExpand { out.append(("\(p).inverted_bottleneck", mid)) }
            out.append(("\(p).depth_conv", mid))
            out.append(("\(p).point_linear", b.outChannels))
        }
        out.append(("last_conv.final_expand_layer", arch.finalExpandChannels))
        return out
    }
}

/// Grow-only float storage for activations and their gradients.
final class Arena {
    private(set) var values = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)
    private(set) var grads = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)
    private(set) var scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)

    /// Grows the regions to at least the counts given, zeroed. New memory is zeroed by
    /// `context`'s workers in parallel: the first touch of fresh pages is the cost
    /// (the kernel's page clearing; gigabytes at 224 px), and on two cores two threads
    /// touched 3 GB in 0.6 s where one took 1.2-3.8 s (2026-12-07).
    func reserve(values count: Int, grads gradCount: Int, scratch scratchCount: Int, context: ComputeContext) {
        func grown(_ region: inout UnsafeMutableBufferPointer<Float>, _ count: Int) {
            guard region.count < count else { return }
            region.deallocate()
            let fresh = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            context.parallelChunks(count, minChunk: 1 << 18, align: 1024) { _, range in
                UnsafeMutableBufferPointer(rebasing: fresh[range]).initialize(repeating: 0)
            }
            region = fresh
        }
        grown(&values, count)
        grown(&grads, gradCount)
        grown(&scratch, scratchCount)
    }

    deinit {
        values.deallocate()
        grads.deallocate()
        scratch.deallocate()
    }
}
