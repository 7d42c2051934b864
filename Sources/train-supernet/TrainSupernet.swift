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

            stdout: a JSON line every --log-every steps. stderr: messages and progress (step, \
            steps/s, images/s, ETA to --steps): one updating line on a terminal, else a line \
            every 10 s.

            Examples:
              train-supernet --space pipelines/spaces/tiny.json --data demo/data/train \\
                  --checkpoint demo/supernet.safetensors.lz4 --steps 200 --total-steps 1000
              pack-imagenet ... | train-supernet --space S --data - --checkpoint C --steps 100
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Option(help: ArgumentHelp("Training shards: a directory, a shard file, or '-' for a shard stream on stdin.", valueName: "shards"))
    var data: String

    @Option(help: ArgumentHelp("Validation shards: evaluate the min and max subnets (after BN recalibration) every --val-every steps and at the end, under the evaluation transform that matches --augment (train, auto-augment-tf: the official centre crop; none, pad-crop: the whole image).", valueName: "shards"))
    var val: String?

    @Option(help: ArgumentHelp("Checkpoint file: resumed if it exists (a train-supernet checkpoint, or a plain state_dict to start from), written atomically every --save-every steps and at the end.", valueName: "file"))
    var checkpoint: String

    @Option(help: "Train until this many steps in total (default: --total-steps).")
    var steps: Int?

    @Option(help: "Train until this many epochs of the training data in total (needs shard files with index.json).")
    var epochs: Double?

    @OptionGroup var recipe: TrainingRecipeOptions

    @Option(help: ArgumentHelp("Fixed subnets: arch JSON lines, --num-arch per step, cycled (for exact tests).", valueName: "file"))
    var archs: String?

    @Option(help: ArgumentHelp("Stand-alone training: this one subnet (an arch JSON object, or @FILE for a file's first arch line) from scratch, on the labels, every step; no sandwich, no distillation (--kd, --num-arch and --sampler do not apply). The checkpoint serves this arch only.", valueName: "json|@file"))
    var arch: String?

    @Option(name: .customLong("init"), help: ArgumentHelp("Start a new run from these weights instead of the initialisation: a supernet checkpoint, or an exported subnet (export-subnet) with its --arch. Fine-tuning: --arch A --init C trains subnet A from C's weights.", valueName: "file"))
    var initFrom: String?

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
        if saveEvery < 1 || logEvery < 1 || calibBatches < 1 { throw ValidationError("--save-every, --log-every and --calib-batches must be at least 1") }
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        if arch != nil && archs != nil { throw ValidationError("give --arch (one subnet stand-alone) or --archs (fixed subnets of a supernet), not both") }
    }

    mutating func execute() throws {
        var settings = TrainingRunSettings(spacePath: spaceOptions.space, dataPath: data, checkpointPath: checkpoint)
        settings.validationPath = val
        settings.steps = steps
        settings.epochs = epochs
        settings.archsPath = archs
        settings.initPath = initFrom
        settings.saveEvery = saveEvery
        settings.logEvery = logEvery
        settings.validateEvery = valEvery
        settings.validationBatches = valBatches
        settings.calibrationBatches = calibBatches
        settings.threads = threads.count
        var overrides = recipe.overrides
        if let arch {
            overrides.standaloneArch = try ArchArgument.read(arch, in: try spaceOptions.load())
        }
        let run = try TrainingRun(settings, overrides: overrides)
        let out = StandardOutput.shared
        let outcome = try run.run(TrainingReporter(
            log: { line in
                try out.write(line.jsonText + "\n")
                try out.flush()
            },
            info: { Diagnostics.endProgress(); Diagnostics.info($0) },
            // On a terminal one line that updates every second; elsewhere (make, a log
            // file) a plain line every 10 s.
            progress: { Diagnostics.stderrIsTerminal ? Diagnostics.progress($0) : Diagnostics.info($0) },
            progressInterval: Diagnostics.stderrIsTerminal ? 1 : 10))
        if case let .interrupted(signal, _) = outcome {
            try out.flush()
            // In an MPI job any other status than 0 reads as a failed job.
            if (run.communicator?.size ?? 1) > 1 { return }
            throw ExitCode(128 + signal)
        }
    }
}
