import ArgumentParser
import Training

/// The training recipe's options (`train-supernet`; later the stand-alone and
/// fine-tuning modes): each nil unless given, so a resumed run can tell what was
/// asked for from what the checkpoint holds. Defaults are the official AlphaNet
/// config (`TrainingOptions`).
public struct TrainingRecipeOptions: ParsableArguments {
    @Option(name: .customLong("total-steps"), help: "Steps of the whole run: the learning-rate schedule spans them (default 1000; fixed at the first run).")
    public var totalSteps: Int?

    @Option(name: .customLong("batch-size"), help: "Images per step (default 64).")
    public var batchSize: Int?

    @Option(name: .customLong("num-arch"), help: "Subnets per step: the largest, num-arch - 2 random, the smallest (default 4).")
    public var numArch: Int?

    @Option(help: "How the random subnets are drawn (default uniform).")
    public var sampler: SamplerKind?

    @Option(name: .customLong("num-trials"), help: "Candidates per attentive draw (default 3).")
    public var numTrials: Int?

    @Option(name: .customLong("flops-bucket"), help: ArgumentHelp(
        "Width of the attentive samplers' FLOPs buckets, MFLOPs (official discretize_step: 25).",
        discussion: "Default: 25 where the space spans at least 40 such buckets (the official space), else a 60th of its FLOPs span.",
        valueName: "mflops"))
    public var flopsBucket: Double?

    @Option(help: "Distillation loss of the other subnets: AlphaNet's adaptive alpha-divergence, in-place KL, or labels only (default alpha).")
    public var kd: DistillationKind?

    @Option(name: .customLong("alpha-min"), help: "Lower alpha of the adaptive alpha-divergence (default -1).")
    public var alphaMin: Double?

    @Option(name: .customLong("alpha-max"), help: "Upper alpha (default 1).")
    public var alphaMax: Double?

    @Option(name: .customLong("iw-clip"), help: "Importance-weight clip (default 5).")
    public var iwClip: Double?

    @Option(name: .customLong("label-smoothing"), help: "Label smoothing of the largest subnet's loss (default 0.1).")
    public var labelSmoothing: Double?

    @Option(help: "Dropout before the classifier of the largest subnet (default 0.2).")
    public var dropout: Double?

    @Option(name: .customLong("drop-connect"), help: "Drop-connect rate of the largest subnet, last two stages (default 0.2).")
    public var dropConnect: Double?

    @Option(help: "Base learning rate, scaled by max(1, batch // 256) as the official code does (default 0.1).")
    public var lr: Double?

    @Option(name: .customLong("lr-schedule"), help: "Learning-rate schedule (default warmup-cosine, the official one).")
    public var lrSchedule: LRScheduleKind?

    @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps (default: 5/360 of --total-steps, the official 5 of 360 epochs).")
    public var warmupSteps: Int?

    @Option(name: .customLong("weight-decay"), help: "Weight decay of conv and linear weights; none on BN and biases (default 1e-5).")
    public var weightDecay: Double?

    @Option(help: "SGD momentum, Nesterov (default 0.9).")
    public var momentum: Double?

    @Option(name: .customLong("grad-clip"), help: "Clip gradients by value; 0 turns it off (default 1.0).")
    public var gradClip: Double?

    @Option(help: ArgumentHelp("Augmentation (default train).", discussion: "train: RandomResizedCrop + flip (the official `default`); auto-augment-tf: train, then AutoAugment's ImageNet policy v0 (the official `auto_augment_tf`, AlphaNet's recipe); pad-crop: pad 4, crop, flip; none: images as stored."))
    public var augment: AugmentMode?

    @Option(name: .customLong("data-order"), help: ArgumentHelp(
        "Order of training images (default epochs).",
        discussion: "epochs: every image once per epoch in a seeded random order (the official DistributedSampler), resumed at any step without re-reading; buffer: shards in random order through --shuffle-buffer (what a stream, --data -, always uses)."))
    public var dataOrder: DataOrderKind?

    @Option(name: .customLong("data-memory"), help: "MiB of decoded images the epochs order keeps (default 4096); a larger set is permuted in windows of shards this size.")
    public var dataMemory: Int?

    @Option(name: .customLong("shuffle-buffer"), help: "Images in the shuffle buffer of --data-order buffer and of streams (default 10000).")
    public var shuffleBuffer: Int?

    @Flag(name: .customLong("sync-bn"), help: ArgumentHelp(
        "Synchronise BatchNorm over the ranks of an MPI job.",
        discussion: "Every training BN normalises with the statistics of the whole global batch (all-reduced per layer), so N ranks x --batch-size b compute what 1 process x N*b computes. Off by default, as the official recipe (sync_bn: False): each rank normalises its own batch. No effect in a plain run."))
    public var syncBatchNorm = false

    @Option(help: "Random seed (default 0).")
    public var seed: UInt64?

    @Option(help: "Run every subnet at this resolution instead of its own (default: their own).")
    public var resolution: Int?

    @Option(help: ArgumentHelp(
        "K-shot supernets: K weight copies of every shared convolution and of the classifier (default 1: the plain supernet).",
        discussion: "Each subnet runs with the convex combination sum_k lambda_k W_k of the copies; its codes lambda come from a simplex-net (an MLP on the subnet's one-hot encoding, with a channel branch on its widths) through a softmax with --kshot-temperature. Copies and simplex-net train jointly after --kshot-warmup steps of uniform codes (K-shot NAS, Su et al. 2021; README: the choices made). Fixed at the first run.",
        valueName: "K"))
    public var kshot: Int?

    @Option(name: .customLong("kshot-temperature"), help: "Temperature tau of the simplex codes' softmax (default 0.3, the paper's).")
    public var kshotTemperature: Double?

    @Option(name: .customLong("kshot-warmup"), help: ArgumentHelp("Steps with uniform codes (the simplex-net frozen) before it trains with the copies (default: a tenth of --total-steps).", valueName: "steps"))
    public var kshotWarmup: Int?

    public init() {}

    public func validate() throws {
        if let k = kshot, !(1...64).contains(k) { throw ValidationError("--kshot must be within 1...64 (1: the plain supernet)") }
        if let t = kshotTemperature, !(t > 0 && t.isFinite) { throw ValidationError("--kshot-temperature must be a positive number") }
        if let w = kshotWarmup, w < 0 { throw ValidationError("--kshot-warmup must be at least 0") }
        if let t = totalSteps, t < 1 { throw ValidationError("--total-steps must be at least 1") }
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let n = numArch, n < 1 { throw ValidationError("--num-arch must be at least 1") }
        if let n = numTrials, n < 1 { throw ValidationError("--num-trials must be at least 1") }
        if let b = flopsBucket, !(b > 0 && b.isFinite) { throw ValidationError("--flops-bucket must be a positive number of MFLOPs") }
        if let m = dataMemory, !(1...(1 << 30)).contains(m) { throw ValidationError("--data-memory must be within 1...\(1 << 30) MiB") }
        if let s = shuffleBuffer, s < 0 { throw ValidationError("--shuffle-buffer must be at least 0") }
        if let r = resolution, !(0...1024).contains(r) { throw ValidationError("--resolution must be within 0...1024 (0: each subnet's own)") }
    }

    /// The options given, for `TrainingRun`.
    public var overrides: TrainingOverrides {
        var o = TrainingOverrides()
        (o.numArch, o.sampler, o.numTrials, o.kd) = (numArch, sampler, numTrials, kd)
        o.flopsBucket = flopsBucket
        (o.alphaMin, o.alphaMax, o.iwClip) = (alphaMin, alphaMax, iwClip)
        (o.labelSmoothing, o.dropout, o.dropConnect) = (labelSmoothing, dropout, dropConnect)
        (o.lr, o.lrSchedule, o.totalSteps, o.warmupSteps) = (lr, lrSchedule, totalSteps, warmupSteps)
        (o.weightDecay, o.momentum, o.gradClip) = (weightDecay, momentum, gradClip)
        (o.batchSize, o.seed, o.augment, o.shuffleBuffer, o.resolution) = (batchSize, seed, augment, shuffleBuffer, resolution)
        (o.dataOrder, o.dataMemoryMiB) = (dataOrder, dataMemory)
        o.syncBatchNorm = syncBatchNorm ? true : nil
        (o.kshot, o.kshotTemperature, o.kshotWarmupSteps) = (kshot, kshotTemperature, kshotWarmup)
        return o
    }
}
