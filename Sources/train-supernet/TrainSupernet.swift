import ArgumentParser
import ToolSupport
import Training
import System

@main
struct TrainSupernet: Tool {
    static let configuration = CommandConfiguration(
        commandName: "train-supernet",
        abstract: "Train an AlphaNet supernet with the sandwich rule and alpha-divergence distillation.",
        discussion: """
            Each step trains --num-arch subnets on one batch: the largest on the labels (label \
            smoothing, dropout, drop-connect), then random subnets and the smallest, distilled \
            from the largest's detached logits (--kd alpha: AlphaNet's adaptive alpha-divergence; \
            kl: in-place KD; none: labels). Gradients are summed, clipped by value, and one SGD \
            step (Nesterov) is taken. Defaults follow the official AlphaNet config.

            --steps N continues from the checkpoint until N steps in total, so training can \
            advance in slices (make, cron). A resumed run continues exactly: the checkpoint holds \
            the weights, momentum, step, random state and every option. Options given again on \
            resume must match the checkpoint's. SIGINT/SIGTERM save a checkpoint, then exit 130/143.

            stdout: a JSON line every --log-every steps. stderr: progress.

            Examples:
              train-supernet --space pipelines/spaces/tiny.json --data demo/data/train \\
                  --checkpoint demo/supernet.safetensors.lz4 --steps 200 --total-steps 1000
              pack-imagenet ... | train-supernet --space S --data - --checkpoint C --steps 100
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Option(help: ArgumentHelp("Training shards: a directory, a shard file, or '-' for a shard stream on stdin.", valueName: "shards"))
    var data: String

    @Option(help: ArgumentHelp("Validation shards: evaluate the min and max subnets (after BN recalibration) every --val-every steps and at the end, under the evaluation transform that matches --augment (train: the official centre crop; none, pad-crop: the whole image).", valueName: "shards"))
    var val: String?

    @Option(help: ArgumentHelp("Checkpoint file: resumed if it exists (a train-supernet checkpoint, or a plain state_dict to start from), written atomically every --save-every steps and at the end.", valueName: "file"))
    var checkpoint: String

    @Option(help: "Train until this many steps in total (default: --total-steps).")
    var steps: Int?

    @Option(help: "Train until this many epochs of the training data in total (needs shard files with index.json).")
    var epochs: Double?

    @Option(name: .customLong("total-steps"), help: "Steps of the whole run: the learning-rate schedule spans them (default 1000; fixed at the first run).")
    var totalSteps: Int?

    @Option(name: .customLong("batch-size"), help: "Images per step (default 64).")
    var batchSize: Int?

    @Option(name: .customLong("num-arch"), help: "Subnets per step: the largest, num-arch - 2 random, the smallest (default 4).")
    var numArch: Int?

    @Option(help: "How the random subnets are drawn (default uniform).")
    var sampler: SamplerKind?

    @Option(name: .customLong("num-trials"), help: "Candidates per attentive draw (default 3).")
    var numTrials: Int?

    @Option(help: "Distillation loss of the other subnets: AlphaNet's adaptive alpha-divergence, in-place KL, or labels only (default alpha).")
    var kd: DistillationKind?

    @Option(name: .customLong("alpha-min"), help: "Lower alpha of the adaptive alpha-divergence (default -1).")
    var alphaMin: Double?

    @Option(name: .customLong("alpha-max"), help: "Upper alpha (default 1).")
    var alphaMax: Double?

    @Option(name: .customLong("iw-clip"), help: "Importance-weight clip (default 5).")
    var iwClip: Double?

    @Option(name: .customLong("label-smoothing"), help: "Label smoothing of the largest subnet's loss (default 0.1).")
    var labelSmoothing: Double?

    @Option(help: "Dropout before the classifier of the largest subnet (default 0.2).")
    var dropout: Double?

    @Option(name: .customLong("drop-connect"), help: "Drop-connect rate of the largest subnet, last two stages (default 0.2).")
    var dropConnect: Double?

    @Option(help: "Base learning rate, scaled by max(1, batch // 256) as the official code does (default 0.1).")
    var lr: Double?

    @Option(name: .customLong("lr-schedule"), help: "Learning-rate schedule (default warmup-cosine, the official one).")
    var lrSchedule: LRScheduleKind?

    @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps (default: 5/360 of --total-steps, the official 5 of 360 epochs).")
    var warmupSteps: Int?

    @Option(name: .customLong("weight-decay"), help: "Weight decay of conv and linear weights; none on BN and biases (default 1e-5).")
    var weightDecay: Double?

    @Option(help: "SGD momentum, Nesterov (default 0.9).")
    var momentum: Double?

    @Option(name: .customLong("grad-clip"), help: "Clip gradients by value; 0 turns it off (default 1.0).")
    var gradClip: Double?

    @Option(help: "Augmentation: train (RandomResizedCrop + flip, official), pad-crop (pad 4, crop, flip), none (default train).")
    var augment: AugmentMode?

    @Option(name: .customLong("shuffle-buffer"), help: "Images in the shuffle buffer (default 10000).")
    var shuffleBuffer: Int?

    @Option(help: "Random seed (default 0).")
    var seed: UInt64?

    @Option(help: "Run every subnet at this resolution instead of its own (default: their own).")
    var resolution: Int?

    @Option(help: ArgumentHelp("Fixed subnets: arch JSON lines, --num-arch per step, cycled (for exact tests).", valueName: "file"))
    var archs: String?

    @Option(name: .customLong("save-every"), help: "Save a checkpoint every this many steps.")
    var saveEvery = 100

    @Option(name: .customLong("log-every"), help: "Write a JSON line every this many steps.")
    var logEvery = 10

    @Option(name: .customLong("val-every"), help: "Validate every this many steps with --val (default: only at the end).")
    var valEvery: Int?

    @Option(name: .customLong("val-batches"), help: "Validation batches of --batch-size for --val (default: the whole set).")
    var valBatches: Int?

    @Option(name: .customLong("calib-batches"), help: "BN calibration batches of --batch-size for --val (official: 64).")
    var calibBatches = 64

    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let s = steps, s < 0 { throw ValidationError("--steps must be at least 0") }
        if let t = totalSteps, t < 1 { throw ValidationError("--total-steps must be at least 1") }
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let n = numArch, n < 1 { throw ValidationError("--num-arch must be at least 1") }
        if saveEvery < 1 || logEvery < 1 || calibBatches < 1 { throw ValidationError("--save-every, --log-every and --calib-batches must be at least 1") }
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
    }

    mutating func execute() throws {
        var settings = TrainingRunSettings(spacePath: spaceOptions.space, dataPath: data, checkpointPath: checkpoint)
        settings.validationPath = val
        settings.steps = steps
        settings.epochs = epochs
        settings.archsPath = archs
        settings.saveEvery = saveEvery
        settings.logEvery = logEvery
        settings.validateEvery = valEvery
        settings.validationBatches = valBatches
        settings.calibrationBatches = calibBatches
        settings.threads = threads.count

        var o = TrainingOverrides()
        (o.numArch, o.sampler, o.numTrials, o.kd) = (numArch, sampler, numTrials, kd)
        (o.alphaMin, o.alphaMax, o.iwClip) = (alphaMin, alphaMax, iwClip)
        (o.labelSmoothing, o.dropout, o.dropConnect) = (labelSmoothing, dropout, dropConnect)
        (o.lr, o.lrSchedule, o.totalSteps, o.warmupSteps) = (lr, lrSchedule, totalSteps, warmupSteps)
        (o.weightDecay, o.momentum, o.gradClip) = (weightDecay, momentum, gradClip)
        (o.batchSize, o.seed, o.augment, o.shuffleBuffer, o.resolution) = (batchSize, seed, augment, shuffleBuffer, resolution)

        let run = try TrainingRun(settings, overrides: o)
        let out = StandardOutput.shared
        let outcome = try run.run(TrainingReporter(
            log: { line in
                try out.write(line.jsonText + "\n")
                try out.flush()
            },
            info: { Diagnostics.endProgress(); Diagnostics.info($0) },
            progress: { Diagnostics.progress($0) }))
        if case let .interrupted(signal, _) = outcome {
            try out.flush()
            throw ExitCode(128 + signal)
        }
    }
}
