import ArgumentParser
import DataPipeline
import Dispatch
import FileFormats
import NASCore
import Supernet
import ToolSupport
import Training
#if canImport(Glibc)
import Glibc
#endif

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
              pack-imagenet ... -o - | train-supernet --space S --data - --checkpoint C --steps 100
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Option(help: ArgumentHelp("Training shards: a directory, a shard file, or '-' for a shard stream on stdin.", valueName: "shards"))
    var data: String

    @Option(help: ArgumentHelp("Validation shards: evaluate the min and max subnets (after BN recalibration) every --val-every steps and at the end, under the evaluation transform that matches --augment (train: the official centre crop; none, pad-crop: the whole image).", valueName: "shards"))
    var val: String?

    @Option(help: ArgumentHelp("Checkpoint file: resumed if it exists, written atomically every --save-every steps and at the end.", valueName: "file"))
    var checkpoint: String

    @Option(help: "Train until this many steps in total (default: --total-steps).")
    var steps: Int?

    @Option(help: "Train until this many epochs of the training data in total (needs shard files with index.json or a countable directory).")
    var epochs: Double?

    @Option(name: .customLong("total-steps"), help: "Steps of the whole run: the learning-rate schedule spans them (default 1000; fixed at the first run).")
    var totalSteps: Int?

    @Option(name: .customLong("batch-size"), help: "Images per step (default 64).")
    var batchSize: Int?

    @Option(name: .customLong("num-arch"), help: "Subnets per step: the largest, num-arch - 2 random, the smallest (default 4).")
    var numArch: Int?

    @Option(help: "Random subnets: uniform, attentive-bestup or attentive-worstup (default uniform).")
    var sampler: String?

    @Option(name: .customLong("num-trials"), help: "Candidates per attentive draw (default 3).")
    var numTrials: Int?

    @Option(help: "Distillation loss of the other subnets: alpha, kl or none (default alpha).")
    var kd: String?

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

    @Option(name: .customLong("lr-schedule"), help: "warmup-cosine (official) or constant (default warmup-cosine).")
    var lrSchedule: String?

    @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps (default: 5/360 of --total-steps, the official 5 of 360 epochs).")
    var warmupSteps: Int?

    @Option(name: .customLong("weight-decay"), help: "Weight decay of conv and linear weights; none on BN and biases (default 1e-5).")
    var weightDecay: Double?

    @Option(help: "SGD momentum, Nesterov (default 0.9).")
    var momentum: Double?

    @Option(name: .customLong("grad-clip"), help: "Clip gradients by value; 0 turns it off (default 1.0).")
    var gradClip: Double?

    @Option(help: "Augmentation: train (RandomResizedCrop + flip, official), pad-crop (pad 4, crop, flip), none (default train).")
    var augment: String?

    @Option(name: .customLong("shuffle-buffer"), help: "Images in the shuffle buffer (default 10000).")
    var shuffleBuffer: Int?

    @Option(help: "Random seed (default 0).")
    var seed: UInt64?

    @Option(help: "Run every subnet at this resolution instead of its own (default: their own).")
    var resolution: Int?

    @Option(help: ArgumentHelp("Fixed subnets: arch JSON lines, --num-arch per step, cycled (for exact tests).", valueName: "file"))
    var archs: String?

    @Option(name: .customLong("save-every"), help: "Save a checkpoint every this many steps (default 100).")
    var saveEvery = 100

    @Option(name: .customLong("log-every"), help: "Write a JSON line every this many steps (default 10).")
    var logEvery = 10

    @Option(name: .customLong("val-every"), help: "Validate every this many steps with --val (default: only at the end).")
    var valEvery: Int?

    @Option(name: .customLong("val-batches"), help: "Validation batches of --batch-size for --val (default: the whole set).")
    var valBatches: Int?

    @Option(name: .customLong("calib-batches"), help: "BN calibration batches for --val (default 16).")
    var calibBatches = 16

    @Option(help: "Worker threads (default: all cores).")
    var jobs: Int?

    func validate() throws {
        if let s = steps, s < 0 { throw ValidationError("--steps must be at least 0") }
        if let t = totalSteps, t < 1 { throw ValidationError("--total-steps must be at least 1") }
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let n = numArch, n < 1 { throw ValidationError("--num-arch must be at least 1") }
        if let s = sampler, SamplerKind(rawValue: s) == nil { throw ValidationError("--sampler must be uniform, attentive-bestup or attentive-worstup") }
        if let k = kd, !["alpha", "kl", "none"].contains(k) { throw ValidationError("--kd must be alpha, kl or none") }
        if let s = lrSchedule, !["warmup-cosine", "constant"].contains(s) { throw ValidationError("--lr-schedule must be warmup-cosine or constant") }
        if let a = augment, !["train", "pad-crop", "none"].contains(a) { throw ValidationError("--augment must be train, pad-crop or none") }
        if saveEvery < 1 || logEvery < 1 { throw ValidationError("--save-every and --log-every must be at least 1") }
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
    }

    /// The options given on the command line, over `base`.
    func options(over base: TrainingOptions) -> TrainingOptions {
        var o = base
        if let v = numArch { o.numArch = v }
        if let v = sampler, let s = SamplerKind(rawValue: v) { o.sampler = s }
        if let v = numTrials { o.numTrials = v }
        if let v = kd {
            switch v {
            case "kl": o.distillation = .kl
            case "none": o.distillation = .none
            default: o.distillation = .alphaDivergence(alphaMin: alphaMin ?? -1, alphaMax: alphaMax ?? 1, importanceWeightClip: iwClip ?? 5)
            }
        } else if alphaMin != nil || alphaMax != nil || iwClip != nil, case let .alphaDivergence(lo, hi, clip) = o.distillation {
            o.distillation = .alphaDivergence(alphaMin: alphaMin ?? lo, alphaMax: alphaMax ?? hi, importanceWeightClip: iwClip ?? clip)
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
        if let v = resolution { o.resolution = v }
        return o
    }

    mutating func execute() throws {
        let givenSpace = try spaceOptions.load()
        let context = ComputeContext(workers: jobs ?? ProcessInfo_activeProcessors())

        // Resume or start.
        var space = givenSpace
        var weights: SupernetWeights
        var resume: TrainingState?
        var options: TrainingOptions
        if access(checkpoint, F_OK) == 0 {
            let c: Checkpoint
            do { c = try Checkpoint(contentsOf: checkpoint, space: nil) } catch {
                throw ToolError.data(error.message, in: checkpoint)
            }
            guard c.space.json["supernet_config"] == givenSpace.json["supernet_config"] || c.space == givenSpace else {
                throw ToolError.data("the checkpoint was trained on another search space than \(spaceOptions.space)", in: checkpoint)
            }
            space = c.space
            weights = c.weights
            resume = c.training
            let stored = c.training.map { TrainingOptions(json: $0.info["options"] ?? .object([])) } ?? TrainingOptions()
            options = stored
            if c.training != nil {
                let wanted = self.options(over: stored)
                if wanted != stored {
                    throw ToolError.usage("options differ from those the checkpoint was trained with (\(differences(stored, wanted))); drop them to resume, or start a new checkpoint")
                }
            } else {
                options = self.options(over: TrainingOptions())
            }
            Diagnostics.info("resuming \(checkpoint) at step \(resume?.step ?? 0)")
        } else {
            weights = SupernetInitializer.initialWeights(space: space, seed: seed ?? 0)
            options = self.options(over: TrainingOptions())
            if totalSteps == nil, let s = steps { options.totalSteps = max(1, s); options.warmupSteps = options.totalSteps * 5 / 360 }
        }
        let fixed: [Arch]? = try archs.map { path in
            var reader = try JSONLinesReader(path: path)
            defer { reader.close() }
            var out: [Arch] = []
            while let line = try reader.nextArch(in: space, anyResolution: true) { out.append(line.arch) }
            guard !out.isEmpty else { throw ToolError.data("no arch lines", in: path) }
            return out
        }
        var target = steps ?? options.totalSteps
        if let e = epochs {
            guard let n = try? countImages(data) else { throw ToolError.usage("--epochs needs shard files with index.json; use --steps") }
            target = Int((e * Double(n) / Double(options.batchSize)).rounded(.up))
        }

        let session: TrainingSession
        do {
            session = try TrainingSession(space: space, weights: weights, options: options, resume: resume,
                                          data: ShardSource.path(data), fixedArchs: fixed, context: context)
        } catch let e as TrainingError {
            throw ToolError.data(e.message, in: data)
        }
        if session.step >= target {
            Diagnostics.info("checkpoint is at step \(session.step), nothing to do for --steps \(target)")
            if resume == nil { try save(session) }
            return
        }

        let stop = SignalFlag()
        var evaluator: ValidationRun?
        if let val {
            evaluator = try ValidationRun(valPath: val, calibPath: data, batchSize: options.batchSize, calibBatches: calibBatches, valBatches: valBatches,
                                          transform: .matching(trainingAugment: options.augment))
        }
        let out = StandardOutput.shared
        var window: (images: Int, seconds: Double) = (0, 0)
        let start = session.step
        var validatedAt: Int?  // the step of the last validation line
        while session.step < target {
            if let signal = stop.received {
                try save(session)
                Diagnostics.info("saved \(checkpoint) at step \(session.step) after signal \(signal)")
                try out.flush()
                throw ExitCode(128 + signal)
            }
            let record: StepRecord
            do {
                guard let r = try session.runStep() else {
                    Diagnostics.info("the training data ended at step \(session.step)")
                    break
                }
                record = r
            } catch let e as TrainingError {
                // Keep what was trained; a run that failed before its first step
                // (e.g. unreadable --data) leaves no new checkpoint behind.
                if session.step > start { try? save(session) }
                throw ToolError.failure(e.message)
            }
            window.images += record.images
            window.seconds += record.seconds
            if record.step % logEvery == 0 || record.step == target {
                let line: JSONValue = .object([
                    ("step", JSONValue(record.step)),
                    ("lr", .double(record.learningRate)),
                    ("loss", .array(record.losses.map { .double($0.roundedTo(6)) })),
                    ("top1_max", .double(record.maxTop1.roundedTo(3))),
                    ("images_per_s", .double((Double(window.images) / max(1e-9, window.seconds)).roundedTo(2))),
                ])
                try out.write(line.jsonText + "\n")
                try out.flush()
                window = (0, 0)
            }
            Diagnostics.progress("step \(record.step)/\(target) loss \(record.losses.first.map { String(format1($0)) } ?? "-") \(String(format1(Double(record.images) / max(1e-9, record.seconds)))) img/s")
            if record.step % saveEvery == 0 { try save(session) }
            if let ev = evaluator, let every = valEvery, record.step % every == 0 {
                validatedAt = record.step
                try out.write(ev.run(session).jsonText + "\n")
                try out.flush()
            }
        }
        Diagnostics.endProgress()
        try save(session)
        if let ev = evaluator, session.step > start, validatedAt != session.step {
            try out.write(ev.run(session).jsonText + "\n")
        }
        Diagnostics.info("step \(session.step): saved \(checkpoint)")
    }

    func save(_ session: TrainingSession) throws {
        do { try session.checkpoint().write(to: checkpoint) } catch {
            throw ToolError(error, path: checkpoint)
        }
    }

    func differences(_ a: TrainingOptions, _ b: TrainingOptions) -> String {
        guard let x = a.json.objectValue, let y = b.json.objectValue else { return "" }
        // Name the command-line option (JSON key base_lr is --lr, the others spell alike).
        func option(_ key: String) -> String { key == "base_lr" ? "--lr" : "--" + key.split(separator: "_").joined(separator: "-") }
        return zip(x, y).filter { $0.1 != $1.1 }.map { "\(option($0.0.0)): checkpoint \($0.0.1.jsonText), given \($0.1.1.jsonText)" }.joined(separator: "; ")
    }

    func countImages(_ path: String) throws -> Int {
        let json = try JSONValue.parse(String(decoding: try readWholeFile(path + "/index.json"), as: UTF8.self))
        if let n = json["images"]?.intValue { return Int(n) }
        if let shards = json["shards"]?.arrayValue {
            return shards.compactMap { $0["count"]?.intValue ?? $0["images"]?.intValue }.map(Int.init).reduce(0, +)
        }
        throw ToolError.usage("no image count in \(path)/index.json")
    }
}

func format1(_ x: Double) -> String { String(x.roundedTo(3)) }

func ProcessInfo_activeProcessors() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

/// Validation of the min and max subnets during training.
struct ValidationRun {
    let calibration: [BatchLoader.PreparedBatch]
    let validation: [BatchLoader.PreparedBatch]

    /// Calibration and validation images under the evaluation transform that matches the
    /// training augmentation (whole images for none/pad-crop, the official centre crop for train).
    let transform: EvaluationTransform

    init(valPath: String, calibPath: String, batchSize: Int, calibBatches: Int, valBatches: Int?, transform: EvaluationTransform) throws {
        self.transform = transform
        do {
            let v = try BatchLoader(source: ShardSource.path(valPath), batchSize: batchSize, resolution: 32, augmentation: .eval, seed: 0, epochs: 1)
            var val: [BatchLoader.PreparedBatch] = []
            while let b = try v.nextPrepared() {
                val.append(b)
                if let m = valBatches, val.count >= m { break }
            }
            validation = val
            if calibPath == "-" {
                calibration = val
            } else {
                let c = try BatchLoader(source: ShardSource.path(calibPath), batchSize: batchSize, resolution: 32, augmentation: .eval, seed: 0, epochs: 1)
                var cal: [BatchLoader.PreparedBatch] = []
                while cal.count < calibBatches, let b = try c.nextPrepared() { cal.append(b) }
                calibration = cal
            }
        } catch {
            throw ToolError.data(error.description, in: valPath)
        }
    }

    func run(_ session: TrainingSession) -> JSONValue {
        let ev = SubnetEvaluator(model: session.model, calibration: calibration, validation: validation, augmentation: transform.augmentation)
        let space = session.space
        var maxArch = space.maxArch, minArch = space.minArch
        if session.options.resolution > 0 {
            maxArch.resolution = session.options.resolution
            minArch.resolution = session.options.resolution
        }
        let mx = ev.evaluate(maxArch), mn = ev.evaluate(minArch)
        return .object([
            ("step", JSONValue(session.step)),
            ("val_acc1_max", .double(mx.acc1.roundedTo(3))), ("val_acc1_min", .double(mn.acc1.roundedTo(3))),
            ("val_loss_max", .double(mx.loss.roundedTo(5))), ("val_loss_min", .double(mn.loss.roundedTo(5))),
            ("val_images", JSONValue(mx.images)),
        ])
    }
}

/// Records SIGINT/SIGTERM so the training loop can save and exit cleanly.
final class SignalFlag: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLockLike()
    private var value: Int32?

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in self?.set(sig) }
            s.resume()
            sources.append(s)
        }
    }

    private func set(_ s: Int32) {
        lock.locked { if value == nil { value = s } }
    }

    var received: Int32? { lock.locked { value } }
}

/// A pthread mutex (Foundation-free).
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}
