import DataPipeline
import FileFormats
import NASCore
import Supernet
import System

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

/// The distillation loss of the subnets after the largest (`--kd`).
public enum DistillationKind: String, Sendable, CaseIterable {
    /// AlphaNet's adaptive alpha-divergence.
    case alpha
    /// In-place KD (AttentiveNAS, BigNAS).
    case kl
    /// Labels only.
    case none
}

/// The order training images are read in (`--data-order`).
public enum DataOrderKind: String, Sendable, CaseIterable {
    /// Exact epochs: every image once per epoch in a seeded random order (the official
    /// DistributedSampler), resumable at any step without re-reading (see `EpochOrder`).
    case epochs
    /// Shards in a random order per pass through a shuffle buffer (`--shuffle-buffer`);
    /// the only order a stream (`--data -`) can have, and that of checkpoints made before
    /// `data_order` existed.
    case buffer
}

/// How training images are augmented (`--augment`).
public enum AugmentMode: String, Sendable, CaseIterable {
    /// RandomResizedCrop + horizontal flip (the official transform, without AutoAugment).
    case train
    /// `train`, then AutoAugment's ImageNet policy v0 on the crop: the official
    /// `augment: auto_augment_tf` (AlphaNet's and AttentiveNAS's ImageNet recipe).
    case autoAugmentTF = "auto-augment-tf"
    /// Pad 4, random crop, flip (the demo recipe).
    case padCrop = "pad-crop"
    /// Images as stored.
    case none

    public var augmentation: Augmentation {
        switch self {
        case .train: .train
        case .autoAugmentTF: .trainAutoAugment
        case .padCrop: .padCrop(pad: 4)
        case .none: .none
        }
    }
}

/// The learning-rate schedule (`--lr-schedule`).
public enum LRScheduleKind: String, Sendable, CaseIterable {
    /// Linear warm-up, then cosine decay per iteration (official WarmupCosineLR).
    case warmupCosine = "warmup-cosine"
    case constant
}

/// Every setting of a training run. Stored in the checkpoint so a resumed
/// run continues with exactly the same settings.
public struct TrainingOptions: Sendable, Equatable {
    public var numArch = 4
    public var sampler = SamplerKind.uniform
    public var numTrials = 3
    /// Width of the attentive sampler's FLOPs buckets, MFLOPs (official
    /// `discretize_step` 25); 0: `AttentiveSampler.defaultStep` of the space.
    public var flopsBucket = 0.0
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
    public var lrSchedule = LRScheduleKind.warmupCosine
    public var warmupSteps = 0
    public var totalSteps = 1000
    /// Gradient clipping by value; 0 turns it off.
    public var gradClip = 1.0
    public var batchSize = 64
    public var seed: UInt64 = 0
    public var augment = AugmentMode.train
    public var shuffleBuffer = 10_000
    public var dataOrder = DataOrderKind.epochs
    /// Memory for the decoded images of one window of the exact-epoch order, MiB.
    public var dataMemoryMiB = 4096
    /// Data-parallel processes (`mpirun -np`); `batchSize` is per process, as the official
    /// per-GPU batch, so the global batch is `batchSize * ranks`.
    public var ranks = 1
    /// Synchronised BatchNorm over the ranks (`--sync-bn`): each training BN normalises
    /// with the global batch's statistics, so N ranks x b compute what 1 x N·b does.
    public var syncBatchNorm = false
    /// Run every subnet at this resolution instead of its own (0: their own).
    public var resolution = 0
    /// Stand-alone training (`--arch`): this one subnet every step, on the labels
    /// (no sandwich, no distillation); nil: a supernet.
    public var standaloneArch: Arch?
    /// SHA-256 of the file a fine-tuning run started from (`--init`); nil: initialised.
    public var initSHA256: String?
    /// K-shot supernets (`--kshot`): K weight copies of every shared tensor; 1: the plain supernet.
    public var kshot = 1
    /// Temperature of the simplex codes' softmax (`--kshot-temperature`).
    public var kshotTemperature = KShotConfig.defaultTemperature
    /// Steps with uniform codes before the simplex-net trains (`--kshot-warmup`); nil:
    /// a tenth of `totalSteps`.
    public var kshotWarmupSteps: Int?

    public init() {}

    /// The K-shot layout these options train (nil: K = 1).
    public var kshotConfig: KShotConfig? {
        kshot > 1 ? KShotConfig(copies: kshot, temperature: kshotTemperature) : nil
    }

    /// Steps before the simplex-net trains: the copies first learn under uniform codes.
    public var kshotWarmup: Int { kshotWarmupSteps ?? totalSteps / 10 }

    /// The learning rate the official code uses for this batch size.
    public var scaledLR: Double { baseLR * Double(max(1, globalBatch / 256)) }

    /// Images of one step over every rank.
    public var globalBatch: Int { batchSize * ranks }

    public var augmentation: Augmentation { augment.augmentation }

    public var distillationKind: DistillationKind {
        switch distillation {
        case .alphaDivergence: .alpha
        case .kl: .kl
        case .none: .none
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
        guard lrSchedule == .warmupCosine else { return scaledLR }
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
            ("flops_bucket", .double(flopsBucket)),
        ] + kd + [
            ("label_smoothing", .double(labelSmoothing)), ("dropout", .double(dropout)), ("drop_connect", .double(dropConnect)),
            ("drop_connect_only_last_two_stages", .bool(dropConnectOnlyLastTwoStages)),
            ("weight_decay", .double(weightDecay)), ("momentum", .double(momentum)), ("nesterov", .bool(nesterov)),
            ("base_lr", .double(baseLR)), ("lr_schedule", .string(lrSchedule.rawValue)), ("warmup_steps", JSONValue(warmupSteps)),
            ("total_steps", JSONValue(totalSteps)), ("grad_clip", .double(gradClip)), ("batch_size", JSONValue(batchSize)),
            ("seed", .string(String(seed))), ("augment", .string(augment.rawValue)), ("shuffle_buffer", JSONValue(shuffleBuffer)),
            ("data_order", .string(dataOrder.rawValue)), ("data_memory_mib", JSONValue(dataMemoryMiB)),
            ("ranks", JSONValue(ranks)), ("sync_bn", .bool(syncBatchNorm)),
            ("resolution", JSONValue(resolution)),
            ("standalone_arch", standaloneArch.map { $0.merged() } ?? .null),
            ("init_sha256", initSHA256.map(JSONValue.string) ?? .null),
            ("kshot", JSONValue(kshot)), ("kshot_temperature", .double(kshotTemperature)),
            ("kshot_warmup", kshotWarmupSteps.map { JSONValue($0) } ?? .null),
        ])
    }

    /// Reads options written by `json`; missing keys keep their defaults (older
    /// checkpoints), but a key that is present must be readable: an unknown value or a
    /// wrong type is bad data, never silently a default.
    public init(json: JSONValue) throws(Failure) {
        self.init()
        guard let object = json.objectValue else { throw .data("training options: expected a JSON object, found \(json.kindName)") }
        let known = Set(TrainingOptions().json.objectValue?.map(\.0) ?? [])
        if let unknown = object.map(\.0).first(where: { !known.contains($0) }) {
            throw .data("training options: unknown key '\(unknown)' (written by a newer version?)")
        }
        func bad(_ key: String, _ what: String) -> Failure {
            .data("training options: '\(key)' must be \(what), found \(json[key].map(\.jsonText) ?? "nothing")")
        }
        func d(_ k: String) throws(Failure) -> Double? {
            guard let v = json[k] else { return nil }
            guard let x = v.doubleValue, x.isFinite else { throw bad(k, "a finite number") }
            return x
        }
        func i(_ k: String, min: Int = 0) throws(Failure) -> Int? {
            guard let v = json[k] else { return nil }
            guard let x = v.intValue, x >= min, x <= Int64(Int32.max) else { throw bad(k, "an integer of at least \(min)") }
            return Int(x)
        }
        func b(_ k: String) throws(Failure) -> Bool? {
            guard let v = json[k] else { return nil }
            guard let x = v.boolValue else { throw bad(k, "true or false") }
            return x
        }
        func e<E: RawRepresentable & CaseIterable>(_ k: String, _: E.Type) throws(Failure) -> E? where E.RawValue == String {
            guard let v = json[k] else { return nil }
            guard let x = v.stringValue.flatMap(E.init(rawValue:)) else {
                throw bad(k, "one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return x
        }
        numArch = try i("num_arch", min: 1) ?? numArch
        sampler = try e("sampler", SamplerKind.self) ?? sampler
        numTrials = try i("num_trials", min: 1) ?? numTrials
        flopsBucket = try d("flops_bucket") ?? flopsBucket
        guard flopsBucket >= 0 else { throw bad("flops_bucket", "at least 0") }
        switch try e("kd", DistillationKind.self) ?? .alpha {
        case .kl: distillation = .kl
        case .none: distillation = .none
        case .alpha:
            distillation = .alphaDivergence(alphaMin: try d("alpha_min") ?? -1, alphaMax: try d("alpha_max") ?? 1,
                                            importanceWeightClip: try d("iw_clip") ?? 5)
        }
        labelSmoothing = try d("label_smoothing") ?? labelSmoothing
        dropout = try d("dropout") ?? dropout
        dropConnect = try d("drop_connect") ?? dropConnect
        dropConnectOnlyLastTwoStages = try b("drop_connect_only_last_two_stages") ?? dropConnectOnlyLastTwoStages
        weightDecay = try d("weight_decay") ?? weightDecay
        momentum = try d("momentum") ?? momentum
        nesterov = try b("nesterov") ?? nesterov
        baseLR = try d("base_lr") ?? baseLR
        lrSchedule = try e("lr_schedule", LRScheduleKind.self) ?? lrSchedule
        warmupSteps = try i("warmup_steps") ?? warmupSteps
        totalSteps = try i("total_steps", min: 1) ?? totalSteps
        gradClip = try d("grad_clip") ?? gradClip
        batchSize = try i("batch_size", min: 1) ?? batchSize
        if let v = json["seed"] {
            guard let x = v.stringValue.flatMap(UInt64.init) else { throw bad("seed", "an unsigned integer as a string") }
            seed = x
        }
        augment = try e("augment", AugmentMode.self) ?? augment
        shuffleBuffer = try i("shuffle_buffer") ?? shuffleBuffer
        // Checkpoints from before exact epochs were trained through the shuffle buffer.
        dataOrder = try e("data_order", DataOrderKind.self) ?? .buffer
        dataMemoryMiB = try i("data_memory_mib", min: 1) ?? dataMemoryMiB
        ranks = try i("ranks", min: 1) ?? ranks
        syncBatchNorm = try b("sync_bn") ?? syncBatchNorm
        resolution = try i("resolution") ?? resolution
        if let v = json["init_sha256"], v != .null {
            guard let text = v.stringValue, text.count == 64 else { throw bad("init_sha256", "a SHA-256 in hex") }
            initSHA256 = text
        }
        kshot = try i("kshot", min: 1) ?? kshot
        kshotTemperature = try d("kshot_temperature") ?? kshotTemperature
        guard kshotTemperature > 0 else { throw bad("kshot_temperature", "a positive number") }
        if let v = json["kshot_warmup"], v != .null { kshotWarmupSteps = try i("kshot_warmup") }
        if let v = json["standalone_arch"], v != .null {
            do { standaloneArch = try Arch(json: v) } catch { throw bad("standalone_arch", "an arch (\(error))") }
        }
    }
}
