import Foundation

/// The learning rate per iteration (optimizer step), as the official
/// AttentiveNAS `solver/lr_scheduler.py` computes it.
///
/// Iteration `i` counts optimizer steps already taken: the first step uses
/// `i = 0`. (`_LRScheduler.__init__` sets `last_epoch = 0`; AlphaNet's
/// `train_epoch` calls `lr_scheduler.step()` after every `optimizer.step()`,
/// so the schedule is per iteration, not per epoch.)
public enum LearningRateSchedule: Sendable, Equatable {
    /// `ConstantLR`: always the base learning rate.
    case constant(baseLearningRate: Double)
    /// `WarmupCosineLR` (AlphaNet's `warmup_cosine_lr`).
    case warmupCosine(WarmupCosineSchedule)

    public func learningRate(iteration: Int) -> Double {
        switch self {
        case .constant(let base): base
        case .warmupCosine(let schedule): schedule.learningRate(iteration: iteration)
        }
    }

    /// The official linear scaling of `base_lr` by the total batch size,
    /// done in AlphaNet `train_alphanet.py` `main_worker` before the optimizer
    /// and scheduler are built:
    /// `base_lr * max(1, batch_size_total // 256)` with **integer** division,
    /// so batches below 512 keep `base_lr` (e.g. 64 or 384 -> x1, 2048 -> x8:
    /// the official 64 GPUs x 32 images train with lr 0.8).
    public static func officialScaledBaseLearningRate(_ baseLearningRate: Double, totalBatchSize: Int) -> Double {
        precondition(totalBatchSize > 0, "batch size must be positive")
        return baseLearningRate * Double(max(1, totalBatchSize / 256))
    }
}

/// `WarmupCosineLR` (AttentiveNAS `solver/lr_scheduler.py`), exactly:
///
///     factor(i) = 1                                    if i >= warmupIterations
///               = warmupFactor                         if method == constant
///               = warmupFactor * (1 - i/W) + i/W       if method == linear   (W = warmupIterations)
///     lr(i)     = max(i > W ? clampLearningRate : 0,
///                     base * factor(i) * 0.5 * (1 + cos(pi * i / maxIterations)))
///
/// Surprises in the official schedule: the cosine runs over the **whole**
/// run from iteration 0 (it is not restarted after warm-up; the warm-up factor
/// multiplies it); `warmup_lr` (default 0.001) is a **factor** of base_lr, not a
/// rate, so the first step uses `0.001 * base`; the clamp `clamp_lr =
/// base_lr * clamp_lr_percent` (AlphaNet: 0) only applies strictly after
/// warm-up. `base_lr` is the already batch-scaled one
/// (`LearningRateSchedule.officialScaledBaseLearningRate`).
public struct WarmupCosineSchedule: Sendable, Equatable {
    public enum WarmupMethod: String, Sendable, Equatable {
        case linear
        case constant
    }

    public var baseLearningRate: Double
    /// `max_iters = n_iters_per_epoch * epochs`.
    public var maxIterations: Int
    /// `warmup_iters = n_iters_per_epoch * warmup_epochs`.
    public var warmupIterations: Int
    /// `warmup_lr` in the config (a factor of base_lr; official default 0.001).
    public var warmupFactor: Double
    public var warmupMethod: WarmupMethod
    /// `clamp_lr = base_lr * clamp_lr_percent`, an absolute learning rate.
    public var clampLearningRate: Double

    public init(
        baseLearningRate: Double, maxIterations: Int, warmupIterations: Int,
        warmupFactor: Double = 0.001, warmupMethod: WarmupMethod = .linear, clampLearningRate: Double = 0
    ) {
        precondition(maxIterations > 0 && warmupIterations >= 0, "need maxIterations > 0 and warmupIterations >= 0")
        self.baseLearningRate = baseLearningRate
        self.maxIterations = maxIterations
        self.warmupIterations = warmupIterations
        self.warmupFactor = warmupFactor
        self.warmupMethod = warmupMethod
        self.clampLearningRate = clampLearningRate
    }

    /// As AttentiveNAS `build_lr_scheduler` derives it from the training
    /// options (`base_lr` already scaled by batch size).
    public init(
        officialBaseLearningRate base: Double, iterationsPerEpoch: Int, epochs: Int, warmupEpochs: Int,
        clampLearningRatePercent: Double = 0, warmupFactor: Double = 0.001
    ) {
        self.init(
            baseLearningRate: base, maxIterations: iterationsPerEpoch * epochs,
            warmupIterations: iterationsPerEpoch * warmupEpochs, warmupFactor: warmupFactor,
            clampLearningRate: base * clampLearningRatePercent
        )
    }

    public func warmupMultiplier(iteration: Int) -> Double {
        if iteration >= warmupIterations { return 1 }
        switch warmupMethod {
        case .constant:
            return warmupFactor
        case .linear:
            let a = Double(iteration) / Double(warmupIterations)
            return warmupFactor * (1 - a) + a
        }
    }

    public func learningRate(iteration: Int) -> Double {
        precondition(iteration >= 0, "iteration must be non-negative")
        // Python evaluates left to right: base_lr * warmup_factor * 0.5 * (1.0 + cos(pi * i / max_iters)).
        let cosine = 1.0 + cos(Double.pi * Double(iteration) / Double(maxIterations))
        let rate = baseLearningRate * warmupMultiplier(iteration: iteration) * 0.5 * cosine
        let floor = iteration > warmupIterations ? clampLearningRate : 0
        return max(floor, rate)
    }
}
