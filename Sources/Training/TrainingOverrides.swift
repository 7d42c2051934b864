import Supernet
import System

/// The training options a user gave (nil: not given). Over a fresh run they replace
/// the defaults; on resume they must equal what the checkpoint was trained with.
public struct TrainingOverrides: Sendable {
    public var numArch: Int?
    public var sampler: SamplerKind?
    public var numTrials: Int?
    public var flopsBucket: Double?
    public var kd: DistillationKind?
    public var alphaMin: Double?
    public var alphaMax: Double?
    public var iwClip: Double?
    public var labelSmoothing: Double?
    public var dropout: Double?
    public var dropConnect: Double?
    public var lr: Double?
    public var lrSchedule: LRScheduleKind?
    public var totalSteps: Int?
    public var warmupSteps: Int?
    public var weightDecay: Double?
    public var momentum: Double?
    public var gradClip: Double?
    public var batchSize: Int?
    public var seed: UInt64?
    public var augment: AugmentMode?
    public var shuffleBuffer: Int?
    public var dataOrder: DataOrderKind?
    public var dataMemoryMiB: Int?
    public var resolution: Int?
    public var syncBatchNorm: Bool?
    /// `--arch`: train this subnet stand-alone.
    public var standaloneArch: Arch?
    public var kshot: Int?
    public var kshotTemperature: Double?
    public var kshotWarmupSteps: Int?

    public init() {}

    /// `base` with every given option put in. `--total-steps` alone also sets the
    /// official warm-up (5 of 360 epochs); alpha bounds alone change the alpha loss.
    public func applied(to base: TrainingOptions) -> TrainingOptions {
        var o = base
        if let v = numArch { o.numArch = v }
        if let v = sampler { o.sampler = v }
        if let v = numTrials { o.numTrials = v }
        if let v = flopsBucket { o.flopsBucket = v }
        // Alpha bounds alone change the alpha loss the run already has.
        let alphaGiven = alphaMin != nil || alphaMax != nil || iwClip != nil
        switch kd ?? (alphaGiven && base.distillationKind == .alpha ? .alpha : nil) {
        case .kl?: o.distillation = .kl
        case .none?: o.distillation = .none
        case .alpha?:
            var (lo, hi, clip) = (-1.0, 1.0, 5.0)
            if case let .alphaDivergence(a, b, c) = base.distillation { (lo, hi, clip) = (a, b, c) }
            o.distillation = .alphaDivergence(alphaMin: alphaMin ?? lo, alphaMax: alphaMax ?? hi, importanceWeightClip: iwClip ?? clip)
        case nil: break
        }
        if let v = labelSmoothing { o.labelSmoothing = v }
        if let v = dropout { o.dropout = v }
        if let v = dropConnect { o.dropConnect = v }
        if let v = lr { o.baseLR = v }
        if let v = lrSchedule { o.lrSchedule = v }
        if let v = totalSteps { o.totalSteps = v }
        if let v = warmupSteps { o.warmupSteps = v } else if totalSteps != nil { o.warmupSteps = o.totalSteps * 5 / 360 }
        if let v = weightDecay { o.weightDecay = v }
        if let v = momentum { o.momentum = v }
        if let v = gradClip { o.gradClip = v }
        if let v = batchSize { o.batchSize = v }
        if let v = seed { o.seed = v }
        if let v = augment { o.augment = v }
        if let v = shuffleBuffer { o.shuffleBuffer = v }
        if let v = dataOrder { o.dataOrder = v }
        if let v = dataMemoryMiB { o.dataMemoryMiB = v }
        if let v = resolution { o.resolution = v }
        if let v = syncBatchNorm { o.syncBatchNorm = v }
        if let v = standaloneArch { o.standaloneArch = v }
        if let v = kshot { o.kshot = v }
        if let v = kshotTemperature { o.kshotTemperature = v }
        if let v = kshotWarmupSteps { o.kshotWarmupSteps = v }
        return o
    }
}

extension TrainingOptions {
    /// The options that differ from `other`, named as command-line options, for errors.
    public func differences(from other: TrainingOptions) -> String {
        guard let x = json.objectValue, let y = other.json.objectValue else { return "" }
        func option(_ key: String) -> String {
            switch key {
            case "base_lr": "--lr"
            case "data_memory_mib": "--data-memory"
            case "ranks": "ranks (mpirun -np)"
            case "standalone_arch": "--arch"
            case "init_sha256": "--init"
            case "kshot_warmup": "--kshot-warmup"
            default: "--" + key.split(separator: "_").joined(separator: "-")
            }
        }
        return zip(x, y).filter { $0.1 != $1.1 }
            .map { "\(option($0.0.0)): checkpoint \($0.0.1.jsonText), given \($0.1.1.jsonText)" }
            .joined(separator: "; ")
    }
}
