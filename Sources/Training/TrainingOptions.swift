import DataPipeline
import FileFormats
import NASCore
import Supernet

/// How the random (middle) subnets of each sandwich step are drawn.
public enum SamplerKind: String, Sendable, CaseIterable {
    /// Every choice uniform (official AlphaNet).
    case uniform
    /// AttentiveNAS: a FLOPs target from the space's FLOPs distribution,
    /// `numTrials` candidates near it, keep the lowest (bestup) or highest
    /// (worstup) minibatch loss.
    case attentiveBestUp = "attentive-bestup"
    case attentiveWorstUp = "attentive-worstup"
}

/// Every setting of a training run. Stored in the checkpoint so a resumed
/// run continues with exactly the same settings.
public struct TrainingOptions: Sendable, Equatable {
    public var numArch = 4
    public var sampler = SamplerKind.uniform
    public var numTrials = 3
    public var distillation = Distillation.alphaNet
    public var labelSmoothing = 0.1
    public var dropout = 0.2
    public var dropConnect = 0.2
    public var dropConnectOnlyLastTwoStages = true
    public var weightDecay = 1e-5
    public var momentum = 0.9
    public var nesterov = true
    /// Base learning rate before the official linear scaling
    /// `base * max(1, batch // 256)`.
    public var baseLR = 0.1
    /// "warmup-cosine" (official) or "constant".
    public var lrSchedule = "warmup-cosine"
    public var warmupSteps = 0
    public var totalSteps = 1000
    /// Gradient clipping by value; 0 turns it off.
    public var gradClip = 1.0
    public var batchSize = 64
    public var seed: UInt64 = 0
    /// "train" (RandomResizedCrop + flip, official), "pad-crop" (pad 4 + crop
    /// + flip, the demo recipe), "none" (images as stored).
    public var augment = "train"
    public var shuffleBuffer = 10_000
    /// Run every subnet at this resolution instead of its own (0: their own).
    public var resolution = 0

    public init() {}

    /// The learning rate the official code uses for this batch size.
    public var scaledLR: Double { baseLR * Double(max(1, batchSize / 256)) }

    public var augmentation: Augmentation {
        switch augment {
        case "pad-crop": return .padCrop(pad: 4)
        case "none": return .none
        default: return .train
        }
    }

    public var sandwich: SandwichOptions {
        var s = SandwichOptions()
        s.labelSmoothing = labelSmoothing
        s.distillation = distillation
        s.regularization = Regularization(dropout: Float(dropout), dropConnect: Float(dropConnect), dropConnectOnlyLastTwoStages: dropConnectOnlyLastTwoStages)
        s.gradientClip = gradClip > 0 ? Float(gradClip) : nil
        s.momentum = momentum
        s.nesterov = nesterov
        s.weightDecay = weightDecay
        return s
    }

    /// The learning rate of step `step` (0-based), per iteration as the
    /// official WarmupCosineLR (or constant).
    public func learningRate(step: Int) -> Double {
        guard lrSchedule == "warmup-cosine" else { return scaledLR }
        let schedule = WarmupCosineSchedule(baseLearningRate: scaledLR, maxIterations: max(1, totalSteps), warmupIterations: warmupSteps)
        return schedule.learningRate(iteration: step)
    }
}

extension TrainingOptions {
    public var json: JSONValue {
        var kd: [(String, JSONValue)] = []
        switch distillation {
        case let .alphaDivergence(lo, hi, clip):
            kd = [("kd", .string("alpha")), ("alpha_min", .double(lo)), ("alpha_max", .double(hi)), ("iw_clip", .double(clip))]
        case .kl: kd = [("kd", .string("kl"))]
        case .none: kd = [("kd", .string("none"))]
        }
        return .object([
            ("num_arch", JSONValue(numArch)), ("sampler", .string(sampler.rawValue)), ("num_trials", JSONValue(numTrials)),
        ] + kd + [
            ("label_smoothing", .double(labelSmoothing)), ("dropout", .double(dropout)), ("drop_connect", .double(dropConnect)),
            ("drop_connect_only_last_two_stages", .bool(dropConnectOnlyLastTwoStages)),
            ("weight_decay", .double(weightDecay)), ("momentum", .double(momentum)), ("nesterov", .bool(nesterov)),
            ("base_lr", .double(baseLR)), ("lr_schedule", .string(lrSchedule)), ("warmup_steps", JSONValue(warmupSteps)),
            ("total_steps", JSONValue(totalSteps)), ("grad_clip", .double(gradClip)), ("batch_size", JSONValue(batchSize)),
            ("seed", .string(String(seed))), ("augment", .string(augment)), ("shuffle_buffer", JSONValue(shuffleBuffer)),
            ("resolution", JSONValue(resolution)),
        ])
    }

    /// Reads options written by `json`; missing keys keep their defaults.
    public init(json: JSONValue) {
        self.init()
        func d(_ k: String) -> Double? { json[k]?.doubleValue }
        func i(_ k: String) -> Int? { json[k]?.intValue.map(Int.init) }
        numArch = i("num_arch") ?? numArch
        sampler = json["sampler"]?.stringValue.flatMap(SamplerKind.init(rawValue:)) ?? sampler
        numTrials = i("num_trials") ?? numTrials
        switch json["kd"]?.stringValue {
        case "kl": distillation = .kl
        case "none": distillation = .none
        default: distillation = .alphaDivergence(alphaMin: d("alpha_min") ?? -1, alphaMax: d("alpha_max") ?? 1, importanceWeightClip: d("iw_clip") ?? 5)
        }
        labelSmoothing = d("label_smoothing") ?? labelSmoothing
        dropout = d("dropout") ?? dropout
        dropConnect = d("drop_connect") ?? dropConnect
        dropConnectOnlyLastTwoStages = json["drop_connect_only_last_two_stages"]?.boolValue ?? dropConnectOnlyLastTwoStages
        weightDecay = d("weight_decay") ?? weightDecay
        momentum = d("momentum") ?? momentum
        nesterov = json["nesterov"]?.boolValue ?? nesterov
        baseLR = d("base_lr") ?? baseLR
        lrSchedule = json["lr_schedule"]?.stringValue ?? lrSchedule
        warmupSteps = i("warmup_steps") ?? warmupSteps
        totalSteps = i("total_steps") ?? totalSteps
        gradClip = d("grad_clip") ?? gradClip
        batchSize = i("batch_size") ?? batchSize
        seed = json["seed"]?.stringValue.flatMap(UInt64.init) ?? seed
        augment = json["augment"]?.stringValue ?? augment
        shuffleBuffer = i("shuffle_buffer") ?? shuffleBuffer
        resolution = i("resolution") ?? resolution
    }
}
