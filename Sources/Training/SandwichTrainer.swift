import Cluster
import System
import NASCore
import Supernet

/// The loss of the subnets after the first (in-place distillation).
public enum Distillation: Sendable, Equatable {
    /// AlphaNet's adaptive alpha-divergence (official AdaptiveLossSoft).
    case alphaDivergence(alphaMin: Double, alphaMax: Double, importanceWeightClip: Double)
    /// In-place KD as AttentiveNAS/BigNAS (official KLLossSoft).
    case kl
    /// No distillation: every subnet learns from the labels.
    case none

    public static let alphaNet = Distillation.alphaDivergence(alphaMin: -1, alphaMax: 1, importanceWeightClip: 5)
}

/// Options of one sandwich step (defaults: the official AlphaNet config).
public struct SandwichOptions: Sendable, Equatable {
    public var labelSmoothing: Double = 0.1
    public var distillation: Distillation = .alphaNet
    /// Dropout / drop-connect of the first (largest) subnet.
    public var regularization = Regularization(dropout: 0.2, dropConnect: 0.2)
    /// Clip every gradient element to [-clip, clip] before the step; nil: off.
    public var gradientClip: Float? = 1.0
    public var momentum: Double = 0.9
    public var nesterov = true
    public var weightDecay: Double = 1e-5

    public init() {}
}

/// What one sandwich step did.
public struct StepResult: Sendable {
    /// Loss of each subnet, in order (the official values: the smoothed CE of
    /// the first, the distillation surrogate of the others).
    public var losses: [Double]
    /// Top-1 accuracy (%) of the first subnet on the batch.
    public var firstTop1: Double
    /// Logits of every subnet, `[n, classes]` each.
    public var logits: [[Float]]
    /// Gradient elements changed by clipping.
    public var clipped: Int
    /// Seconds in the all-reduces of a data-parallel step (0 alone), waits excluded.
    public var communicationSeconds = 0.0
    /// Seconds this rank waited for the slowest one before the gradient all-reduce.
    public var waitSeconds = 0.0
}

/// One AlphaNet training step as the official `train_epoch` body: the first
/// subnet on the labels with label smoothing (and dropout / drop-connect),
/// the others distilled from its detached logits; gradients accumulated over
/// all subnets, clipped by value, one SGD step (Nesterov momentum, weight
/// decay on conv and linear weights only, tensors no subnet used skipped).
public final class SandwichTrainer {
    public let model: Supernet
    public var options: SandwichOptions
    public var optimizer: SGDMomentum
    /// Data parallelism (`mpirun`): the processes whose gradients are averaged before
    /// clipping, as DDP's all-reduce does, so every rank takes the same step. Nil: alone.
    public var communicator: Communicator? { didSet { attachBatchNormSync() } }
    /// With a communicator of more than one rank: every training BN normalises with the
    /// statistics of all ranks' batches (`--sync-bn`). Otherwise each rank normalises its
    /// own batch and, as DDP's `broadcast_buffers`, rank 0's running statistics are the
    /// ones every rank keeps.
    public var synchronizeBatchNorm = false { didSet { attachBatchNormSync() } }

    private func attachBatchNormSync() {
        model.batchStatisticsSync = synchronizeBatchNorm ? communicator.map(RankSum.init) : nil
    }
    private let segmentOfOffset: [Int: Int]

    public init(model: Supernet, options: SandwichOptions = SandwichOptions()) {
        self.model = model
        self.options = options
        let params = model.layout.entries.filter { $0.role.isParameter }
        let segments = ParameterSegment.officialLayout(params.map { ($0.name, $0.count) }, weightDecayWeight: options.weightDecay, weightDecayBNBias: 0)
        precondition(zip(segments, params).allSatisfy { $0.offset == $1.offset }, "optimizer and supernet layouts differ")
        optimizer = SGDMomentum(segments: segments, momentum: options.momentum, nesterov: options.nesterov)
        var map: [Int: Int] = [:]
        for (i, s) in segments.enumerated() { map[s.offset] = i }
        segmentOfOffset = map
    }

    /// Runs the sandwich step on one batch. `images` NHWC `[n, h, w, 3]`;
    /// `labels` `[n]`; `learningRate` for this step.
    public func step<G: RandomNumberGenerator>(
        archs: [Arch], images: UnsafeBufferPointer<Float>, shape: Shape4, labels: [Int32],
        learningRate: Double, random: inout G
    ) -> StepResult {
        precondition(!archs.isEmpty && labels.count == shape.n)
        let n = shape.n, classes = model.space.nClasses
        model.zeroGradients()
        var used = [Bool](repeating: false, count: optimizer.segments.count)
        var losses: [Double] = []
        var allLogits: [[Float]] = []
        var teacher: [Float] = []
        var top1 = 0.0
        var grad = [Float](repeating: 0, count: n * classes)
        for (i, arch) in archs.enumerated() {
            let logits = model.forward(arch: arch, input: images, shape: shape, normalization: .batchStatistics, trainable: true,
                                       regularization: i == 0 ? options.regularization : .none, random: &random)
            for s in model.usedParameterOffsets { if let k = segmentOfOffset[s] { used[k] = true } }
            for j in grad.indices { grad[j] = 0 }
            let loss: Float = logits.withUnsafeBufferPointer { z in
                grad.withUnsafeMutableBufferPointer { g in
                    labels.withUnsafeBufferPointer { y in
                        if i == 0 || options.distillation == .none {
                            return SmoothedCrossEntropy(labelSmoothing: options.labelSmoothing)(logits: z, labels: y, batch: n, classes: classes, gradient: g)
                        }
                        return teacher.withUnsafeBufferPointer { t in
                            switch options.distillation {
                            case let .alphaDivergence(lo, hi, clip):
                                return AdaptiveAlphaDivergence(alphaMin: lo, alphaMax: hi, importanceWeightClip: clip)(student: z, teacher: t, batch: n, classes: classes, gradient: g)
                            case .kl:
                                return SoftTargetCrossEntropy()(student: z, teacher: t, batch: n, classes: classes, gradient: g)
                            case .none:
                                return 0
                            }
                        }
                    }
                }
            }
            if i == 0 {
                teacher = logits
                top1 = Self.top1(logits, labels: labels, classes: classes)
            }
            grad.withUnsafeBufferPointer { model.backward(logitsGradient: $0) }
            losses.append(Double(loss))
            allLogits.append(logits)
        }
        var communication = (model.batchStatisticsSync as? RankSum)?.takeSeconds() ?? 0
        var wait = 0.0
        if let c = communicator, c.size > 1 {
            // The wait for the slowest rank apart from the transfer: a barrier first.
            let arrival = monotonicSeconds()
            c.barrier()
            let start = monotonicSeconds()
            wait = start - arrival
            defer { communication += monotonicSeconds() - start }
            // One all-reduce of the summed gradients, averaged; a tensor any rank used
            // takes part in the step on every rank. Losses and top-1 are averaged for the log.
            c.sum(model.gradients)
            let scale = 1 / Float(c.size)
            for i in model.gradients.indices { model.gradients[i] *= scale }
            var flags = used.map { Int64($0 ? 1 : 0) }
            c.max(&flags)
            used = flags.map { $0 != 0 }
            var metrics = losses + [top1]
            c.sum(&metrics)
            metrics = metrics.map { $0 / Double(c.size) }
            losses = Array(metrics.dropLast())
            top1 = metrics[metrics.count - 1]
        }
        // Clipping by value and the SGD step in one parallel pass; only tensors with a
        // gradient take part (PyTorch skips grad None).
        let clipped = optimizer.step(model.context, parameters: model.parameters, gradients: model.gradients,
                                     learningRate: learningRate, hasGradient: used, clip: options.gradientClip)
        if model.layout.kshot != nil { model.parametersChanged() }
        if let c = communicator, c.size > 1, model.batchStatisticsSync == nil, model.space.bnMomentum > 0 {
            // Each rank's running statistics saw only its own batches: keep rank 0's.
            let start = monotonicSeconds()
            c.broadcast(model.buffers)
            communication += monotonicSeconds() - start
        }
        return StepResult(losses: losses, firstTop1: top1, logits: allLogits, clipped: clipped, communicationSeconds: communication, waitSeconds: wait)
    }

    /// Top-1 accuracy in percent of `[n, classes]` logits.
    public static func top1(_ logits: [Float], labels: [Int32], classes: Int) -> Double {
        var correct = 0
        for (i, y) in labels.enumerated() {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            if let m = row.indices.max(by: { row[$0] < row[$1] }), m - i * classes == Int(y) { correct += 1 }
        }
        return 100 * Double(correct) / Double(max(1, labels.count))
    }
}
