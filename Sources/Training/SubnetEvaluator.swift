#if canImport(Glibc)
import System
import Glibc
#endif
import DataPipeline
import NASCore
import Supernet

/// Accuracy of one subnet on a validation set.
public struct SubnetAccuracy: Sendable, Equatable {
    /// Top-1 and top-5 accuracy in percent.
    public var acc1: Double
    public var acc5: Double
    /// Mean cross-entropy (no label smoothing).
    public var loss: Double
    public var images: Int
    /// Some logit was NaN or infinite (non-finite weights or statistics): the other
    /// fields mean nothing.
    public var nonFinite = false

    public init(acc1: Double, acc5: Double, loss: Double, images: Int, nonFinite: Bool = false) {
        self.acc1 = acc1
        self.acc5 = acc5
        self.loss = loss
        self.images = images
        self.nonFinite = nonFinite
    }
}

/// Evaluates subnets as the official code does before reporting accuracy:
/// reset the running statistics of the channels the subnet uses, accumulate
/// them over the calibration batches as a cumulative average (PyTorch BN with
/// momentum None, in train mode), then run the validation set with those
/// statistics. The supernet's own statistics are restored afterwards.
///
/// The images come from `RenderedSets`: decoded once, rendered per resolution and
/// shared by every subnet (and every evaluator) of the same sets.
public final class SubnetEvaluator {
    public let model: Supernet
    public let sets: RenderedSets

    public init(model: Supernet, sets: RenderedSets) {
        self.model = model
        self.sets = sets
    }

    /// An evaluator with sets of its own; rendered sets of the most recent resolutions
    /// are kept within `cacheBytes`.
    public convenience init(model: Supernet, calibration: [BatchLoader.PreparedBatch],
                            validation: [BatchLoader.PreparedBatch], augmentation: Augmentation = .eval,
                            cacheBytes: Int = 1 << 31) {
        self.init(model: model, sets: RenderedSets(calibration: calibration, validation: validation,
                                                   augmentation: augmentation, cacheBytes: cacheBytes))
    }

    /// Recalibrates BN for `arch` and measures it on the validation set.
    public func evaluate(_ arch: Arch) -> SubnetAccuracy {
        let (cal, val) = sets.batches(resolution: arch.resolution)
        let saved = model.runningStatistics()
        defer { model.setRunningStatistics(saved) }
        Self.recalibrate(model, arch, on: cal)
        return Self.validate(model, arch, on: val)
    }

    /// Resets the running statistics of `arch` in `model` and accumulates them over
    /// `batches`; leaves them there (callers that want them, e.g. `infer --bn running`
    /// after calibration).
    public static func recalibrate(_ model: Supernet, _ arch: Arch, on batches: some Sequence<Batch>) {
        var random = SeededRandom(seed: 0)
        model.resetRunningStatistics(for: arch)
        for (i, b) in batches.enumerated() {
            _ = b.images.withUnsafeBufferPointer {
                model.forward(arch: arch, input: $0, shape: Shape4(n: b.count, h: b.resolution, w: b.resolution, c: 3),
                              normalization: .calibration(batchIndex: i + 1), trainable: false, random: &random)
            }
        }
    }

    /// Accuracy of `arch` on `batches` with the running statistics in `model`.
    public static func validate(_ model: Supernet, _ arch: Arch, on batches: some Sequence<Batch>) -> SubnetAccuracy {
        var random = SeededRandom(seed: 0)
        var top1 = 0, top5 = 0, count = 0
        var lossSum = 0.0
        var nonFinite = false
        let classes = model.space.nClasses
        for b in batches {
            let logits = b.images.withUnsafeBufferPointer {
                model.forward(arch: arch, input: $0, shape: Shape4(n: b.count, h: b.resolution, w: b.resolution, c: 3),
                              normalization: .runningStatistics, trainable: false, random: &random)
            }
            if !nonFinite, logits.contains(where: { !$0.isFinite }) { nonFinite = true }
            let m = Metrics.score(logits: logits, labels: b.labels, classes: classes)
            top1 += m.top1
            top5 += m.top5
            lossSum += m.lossSum
            count += b.count
        }
        let n = Double(max(1, count))
        return SubnetAccuracy(acc1: 100 * Double(top1) / n, acc5: 100 * Double(top5) / n, loss: lossSum / n, images: count,
                              nonFinite: nonFinite)
    }
}

/// Top-k counts and cross-entropy of a batch of logits.
public enum Metrics {
    /// Correct top-1 and top-5 counts and the summed cross-entropy (natural
    /// log, computed in Double with the max subtracted).
    public static func score(logits: [Float], labels: [Int32], classes: Int) -> (top1: Int, top5: Int, lossSum: Double) {
        var top1 = 0, top5 = 0
        var loss = 0.0
        for (i, label) in labels.enumerated() {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            let y = row[row.startIndex + Int(label)]
            // Rank of the true class: how many logits beat it (ties count against).
            var above = 0
            var maxV = -Float.infinity
            for v in row {
                if v > y { above += 1 }
                maxV = max(maxV, v)
            }
            if above == 0 { top1 += 1 }
            if above < 5 { top5 += 1 }
            var sum = 0.0
            for v in row { sum += exp(Double(v - maxV)) }
            loss += log(sum) - Double(y - maxV)
        }
        return (top1, top5, loss)
    }

    /// The indices of the `k` largest logits of each row, best first.
    public static func topK(logits: [Float], classes: Int, k: Int) -> [[Int]] {
        let n = logits.count / classes
        return (0..<n).map { i in
            let row = Array(logits[(i * classes)..<((i + 1) * classes)])
            return Array(row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k))
        }
    }
}

