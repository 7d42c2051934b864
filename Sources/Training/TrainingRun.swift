#if canImport(Glibc)
import Glibc
#endif
import Cluster
import DataPipeline
import FileFormats
import NASCore
import Supernet
import System

/// What `train-supernet` is asked to do, besides the training options.
public struct TrainingRunSettings: Sendable {
    public var spacePath: String
    /// Training shards: a directory, a shard file, or "-" for a stream on stdin.
    public var dataPath: String
    public var checkpointPath: String
    public var validationPath: String?
    /// Train until this many steps in total (nil: the options' total steps).
    public var steps: Int?
    /// Or until this many epochs of the training data in total.
    public var epochs: Double?
    /// Fixed subnets (arch JSON lines), cycled `numArch` per step.
    public var archsPath: String?
    /// A new run starts from these weights (a supernet checkpoint or an exported subnet)
    /// instead of the initialisation (`--init`: fine-tuning).
    public var initPath: String?
    public var saveEvery = 100
    public var logEvery = 10
    public var validateEvery: Int?
    public var validationBatches: Int?
    public var calibrationBatches = 64
    public var threads = Cores.available

    public init(spacePath: String, dataPath: String, checkpointPath: String) {
        self.spacePath = spacePath
        self.dataPath = dataPath
        self.checkpointPath = checkpointPath
    }
}

/// Where a training run reports: JSON log lines (the tool's stdout), messages and
/// progress (stderr). The library prints nothing itself.
public struct TrainingReporter {
    public var log: (JSONValue) throws -> Void
    public var info: (String) -> Void
    /// A progress line (steps/s, images/s, ETA), at most once per `progressInterval`
    /// seconds: an updating line on a terminal wants it often, a log file seldom.
    public var progress: (String) -> Void
    public var progressInterval: Double

    public init(log: @escaping (JSONValue) throws -> Void, info: @escaping (String) -> Void, progress: @escaping (String) -> Void,
                progressInterval: Double = 1) {
        self.log = log
        self.info = info
        self.progress = progress
        self.progressInterval = progressInterval
    }
}

/// The progress text of a run: step, rate and time to the target, from the steps and
/// images since the run (this invocation) began.
struct TrainingProgress {
    let target: Int, startStep: Int, startTime: Double
    var lastShown = -Double.infinity
    var images = 0

    init(target: Int, startStep: Int, now: Double) {
        self.target = target
        self.startStep = startStep
        startTime = now
    }

    /// The line for `step` if one is due `interval` seconds after the last (and always
    /// at the target), else nil.
    mutating func line(step: Int, loss: Double?, now: Double, interval: Double) -> String? {
        guard now - lastShown >= interval || step >= target else { return nil }
        lastShown = now
        let elapsed = max(1e-9, now - startTime), done = Double(step - startStep)
        let stepsPerSecond = done / elapsed
        let eta = stepsPerSecond > 0 ? Double(target - step) / stepsPerSecond : .infinity
        let percent = 100 * Double(step) / Double(max(1, target))
        return "step \(step)/\(target) (\(percent.roundedTo(1))%), \(stepsPerSecond.roundedTo(2)) steps/s, "
            + "\((Double(images) / elapsed).roundedTo(1)) images/s, ETA \(Self.duration(eta))"
            + (loss.map { ", loss \($0.roundedTo(3))" } ?? "")
    }

    /// 3725 -> "1h02m05s", 65 -> "1m05s", 7 -> "7s".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let s = Int(seconds.rounded()), h = s / 3600, m = s / 60 % 60, r = s % 60
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        if h > 0 { return "\(h)h\(two(m))m\(two(r))s" }
        return m > 0 ? "\(m)m\(two(r))s" : "\(r)s"
    }
}

/// How a run ended.
public enum TrainingOutcome: Equatable, Sendable {
    /// Reached the target step, or the data ended; the checkpoint is saved.
    case finished(step: Int)
    /// SIGINT or SIGTERM: the checkpoint is saved; the tool exits 128 + signal (0 in an
    /// MPI job of several ranks, where the launcher reads any other status as a failure).
    case interrupted(signal: Int32, step: Int)
}

/// One invocation of `train-supernet`: resume from the checkpoint or start afresh,
/// check the options against the checkpoint's, train until the target step with
/// periodic saves, JSON log lines and validation, and stop cleanly on a signal.
///
/// Never saves a state it should not: a step whose loss is not finite is not saved
/// (the last good checkpoint stays), and a run whose data ended before its first step
/// (an empty stream from a failed upstream tool) is an error that writes nothing.
public final class TrainingRun {
    public let settings: TrainingRunSettings
    public let session: TrainingSession
    public let target: Int
    /// Whether an existing checkpoint was resumed.
    public let resumed: Bool
    private let validation: TrainingValidation?
    /// The MPI job when run by mpirun or srun (nil: a plain run). Every rank trains;
    /// rank 0 alone writes the checkpoint, the log and messages.
    public let communicator: Communicator?
    var isRoot: Bool { communicator?.isRoot ?? true }

    public init(_ settings: TrainingRunSettings, overrides: TrainingOverrides) throws(Failure) {
        self.settings = settings
        communicator = Communicator.world
        let ranks = communicator?.size ?? 1
        let givenSpace = try SearchSpace(contentsOf: settings.spacePath)
        let path = settings.checkpointPath
        var space = givenSpace
        var weights: SupernetWeights
        var resume: TrainingState?
        var options: TrainingOptions
        if access(path, F_OK) == 0 {
            // A plain state_dict (no space stored) takes the given space.
            let file = try TensorFile(contentsOf: path)
            let c: Checkpoint
            do { c = try Checkpoint(file: file, space: file.metadata["space"] == nil ? givenSpace : nil) } catch {
                throw error.located(at: path)
            }
            guard c.space.json["supernet_config"] == givenSpace.json["supernet_config"] || c.space == givenSpace else {
                throw .data("the checkpoint was trained on another search space than \(settings.spacePath)", at: path)
            }
            if c.exportedArch != nil {
                throw .usage("is an exported subnet, not a training checkpoint: fine-tune it with --init \(path) --arch ARCH --checkpoint NEW", at: path)
            }
            if let initPath = settings.initPath {
                // The same command again (an interrupted fine-tuning) resumes; another --init cannot.
                let started = (try? TrainingOptions(json: c.training?.info["options"] ?? .object([])))?.initSHA256
                guard let started, started == (try fileSHA256(initPath)) else {
                    throw .usage("the checkpoint exists and was not started from \(initPath), so it resumes; --init only starts a new run (give a new --checkpoint)", at: path)
                }
            }
            space = c.space
            weights = c.weights
            resume = c.training
            if let training = c.training {
                let stored: TrainingOptions
                do { stored = try TrainingOptions(json: training.info["options"] ?? .object([])) } catch { throw error.located(at: path) }
                var wanted = overrides.applied(to: stored)
                if ranks != stored.ranks {
                    // Another rank count continues the same run when the global batch (and
                    // with it the data order, the learning rate and every step) stays.
                    try TrainingRun.splitGlobalBatch(of: stored, over: ranks, given: overrides.batchSize, into: &wanted)
                }
                var compared = wanted
                (compared.ranks, compared.batchSize) = (stored.ranks, stored.batchSize)
                if let k = overrides.kshot, k != stored.kshot {
                    throw .usage("the checkpoint is \(stored.kshot == 1 ? "a plain supernet (K = 1)" : "a K-shot supernet with K = \(stored.kshot) copies"); --kshot \(k) cannot resume it: drop --kshot, or start a new checkpoint", at: path)
                }
                guard compared == stored else {
                    throw .usage("options differ from those the checkpoint was trained with (\(stored.differences(from: compared))); drop them to resume, or start a new checkpoint")
                }
                options = wanted
                guard stored.kshot == c.kshotCopies else {
                    throw .data("the checkpoint's options say --kshot \(stored.kshot) but it holds \(c.kshotCopies) cop\(c.kshotCopies == 1 ? "y" : "ies") of its weights", at: path)
                }
            } else {
                options = overrides.applied(to: TrainingOptions())
                options.ranks = ranks
                if c.kshotCopies != options.kshot {
                    throw .usage("is a state_dict of \(c.kshotCopies == 1 ? "a plain supernet" : "K = \(c.kshotCopies) copies"), which cannot start a run of --kshot \(options.kshot) (equal copies would stay equal); start a new checkpoint", at: path)
                }
            }
            resumed = true
        } else if let initPath = settings.initPath {
            // Fine-tuning: a new run (step 0, fresh momentum) from another run's weights.
            // A plain state_dict holds no space: the given one applies, as for --checkpoint.
            let initFile = try TensorFile(contentsOf: initPath)
            let c: Checkpoint
            do { c = try Checkpoint(file: initFile, space: initFile.metadata["space"] == nil ? givenSpace : nil) } catch {
                throw error.located(at: initPath)
            }
            guard c.space.json["supernet_config"] == givenSpace.json["supernet_config"] else {
                throw .data("was trained on another search space than \(settings.spacePath)", at: initPath)
            }
            if let served = try c.servedArch() {
                guard let wanted = overrides.standaloneArch else {
                    throw .usage("holds one subnet only: fine-tune it as that subnet with --arch", at: initPath)
                }
                if let why = Checkpoint.refusal(of: wanted, served: served) { throw .usage(why, at: initPath) }
            }
            space = c.space
            options = TrainingRun.newRunOptions(overrides, ranks: ranks, steps: settings.steps)
            options.initSHA256 = try fileSHA256(initPath)
            if c.kshotCopies == options.kshot {
                weights = c.weights
            } else if let arch = options.standaloneArch, options.kshot == 1 {
                // Fine-tuning one subnet of a K-shot supernet: its weights are its own mix.
                weights = c.weights.materialised(for: arch, in: space)
            } else {
                throw .usage("holds K = \(c.kshotCopies) cop\(c.kshotCopies == 1 ? "y" : "ies") of its weights; a run of --kshot \(options.kshot) cannot start from it" + (c.kshotCopies > 1 ? " (fine-tune one subnet of it with --arch)" : ""), at: initPath)
            }
            resumed = false
        } else {
            options = TrainingRun.newRunOptions(overrides, ranks: ranks, steps: settings.steps)
            weights = SupernetInitializer.initialWeights(space: space, seed: overrides.seed ?? 0, kshot: options.kshotConfig)
            resumed = false
        }
        if options.kshot > 1, options.standaloneArch != nil {
            throw .usage("--kshot \(options.kshot) trains a supernet's copies for many subnets; a stand-alone subnet (--arch) has one set of weights: drop --kshot")
        }
        // Fail before the first step, not at the first save.
        try checkWritableDirectory(of: path)
        let fixed = try settings.archsPath.map { p throws(Failure) in try readArchLines(p, in: space) }
        let context = ComputeContext(workers: settings.threads)
        session = try TrainingSession(space: space, weights: weights, options: options, resume: resume,
                                      data: ShardSource.path(settings.dataPath), fixedArchs: fixed, context: context,
                                      communicator: communicator)
        var target = settings.steps ?? options.totalSteps
        if let e = settings.epochs {
            if let order = session.epochOrder {
                target = Int((e * Double(order.stepsPerEpoch)).rounded(.up))
            } else {
                let n = try countImages(settings.dataPath)
                target = Int((e * Double(n) / Double(options.batchSize)).rounded(.up))
            }
        }
        self.target = target
        validation = try settings.validationPath.map { v throws(Failure) in
            try TrainingValidation(valPath: v, calibPath: settings.dataPath, batchSize: options.batchSize,
                                   calibBatches: settings.calibrationBatches, valBatches: settings.validationBatches,
                                   transform: .matching(options.augment))
        }
        if let validation, let v = settings.validationPath {
            for b in validation.validation + validation.calibration {
                if let bad = b.labels.first(where: { Int($0) >= space.nClasses }) {
                    throw .data("label \(bad) is outside the space's \(space.nClasses) classes", at: v)
                }
            }
        }
    }

    /// The options of a run that starts at step 0: the given ones over the defaults; without
    /// --total-steps the schedule spans `steps` (with the official 5-in-360 warm-up).
    static func newRunOptions(_ overrides: TrainingOverrides, ranks: Int, steps: Int?) -> TrainingOptions {
        var options = overrides.applied(to: TrainingOptions())
        options.ranks = ranks
        if overrides.totalSteps == nil, let s = steps {
            options.totalSteps = max(1, s)
            options.warmupSteps = options.totalSteps * 5 / 360
        }
        return options
    }

    /// The per-rank batch for resuming `stored` on `ranks` ranks with the same global
    /// batch: `given` (`--batch-size`) if it fits, or the global batch divided evenly.
    static func splitGlobalBatch(of stored: TrainingOptions, over ranks: Int, given: Int?, into options: inout TrainingOptions) throws(Failure) {
        let global = stored.globalBatch
        let trained = "the checkpoint was trained with a global batch of \(global) (\(stored.ranks) rank\(stored.ranks == 1 ? "" : "s") x --batch-size \(stored.batchSize))"
        let batch: Int
        if let given {
            guard given * ranks == global else {
                throw .usage("\(trained); \(ranks) rank\(ranks == 1 ? "" : "s") x --batch-size \(given) is \(given * ranks); " + (global % ranks == 0 ? "resume with --batch-size \(global / ranks) (or without --batch-size)" : "resume on a rank count that divides \(global)") + ", or start a new checkpoint")
            }
            batch = given
        } else {
            guard global % ranks == 0 else {
                throw .usage("\(trained); \(ranks) ranks cannot split it evenly: resume on a rank count that divides \(global), or start a new checkpoint")
            }
            batch = global / ranks
        }
        options.ranks = ranks
        options.batchSize = batch
    }

    /// Trains until `target`, reporting through `reporter` (on rank 0 of an MPI job).
    public func run(_ given: TrainingReporter) throws -> TrainingOutcome {
        let reporter = isRoot ? given : TrainingReporter(log: { _ in }, info: { _ in }, progress: { _ in }, progressInterval: .infinity)
        if let c = communicator {
            let megabytes = Double(session.model.parameters.count * 4) / 1e6
            reporter.info("an MPI job of \(c.size) rank\(c.size == 1 ? "" : "s"): global batch \(session.options.globalBatch) = \(c.size) x --batch-size \(session.options.batchSize)"
                          + (c.size > 1 ? "; \(megabytes.roundedTo(2)) MB of gradients all-reduced per step" : ""))
        }
        if session.step >= target {
            reporter.info("checkpoint is at step \(session.step), nothing to do for --steps \(target)")
            if !resumed { try save() }
            return .finished(step: session.step)
        }
        if resumed { reporter.info("resuming \(settings.checkpointPath) at step \(session.step)") }
        if let only = session.options.standaloneArch {
            reporter.info("stand-alone training of one subnet (\(only.flops(in: session.space).roundedTo(2)) MFLOPs) on the labels: no sandwich, no distillation")
        }
        if let order = session.epochOrder {
            let windows = order.windows(epoch: 0).count
            reporter.info("data: \(order.catalog.imageCount) images in \(order.catalog.entries.count) shards, epochs of \(order.stepsPerEpoch) steps of \(order.globalBatch)"
                          + (windows > 1 ? ", permuted in \(windows) windows of at most \(order.windowImages) images (--data-memory)" : ""))
        } else if settings.dataPath == "-", session.options.dataOrder == .epochs {
            reporter.info("data: a stream, read in arrival order through a shuffle buffer of \(session.options.shuffleBuffer) images (exact epochs need shard files)")
        }
        let stop = SignalFlag()
        var window: (images: Int, seconds: Double, communication: Double, wait: Double, steps: Int) = (0, 0, 0, 0, 0)
        let start = session.step
        var meter = TrainingProgress(target: target, startStep: start, now: monotonicSeconds())
        var validatedAt: Int?
        while session.step < target {
            // Wait for the batch in short slices, so a signal is honoured while a pipe,
            // a FIFO or `--data -` stalls (the prefetch thread stays blocked in read).
            let waitStart = monotonicSeconds()
            while !session.dataReady(within: 0.1) && stop.received == nil {}
            let waited = monotonicSeconds() - waitStart
            // In a job every rank stops at the same step: the first signal any rank saw.
            var received = stop.received
            if let c = communicator, c.size > 1 {
                var s = [Int64(received ?? 0)]
                c.max(&s)
                received = s[0] == 0 ? nil : Int32(s[0])
            }
            if let signal = received {
                try save()
                reporter.info("saved \(settings.checkpointPath) at step \(session.step) after signal \(signal)")
                return .interrupted(signal: signal, step: session.step)
            }
            guard let record = try session.runStep() else {
                guard session.step > start else {
                    throw Failure.data("the training data holds no batch of \(session.options.batchSize) images", at: settings.dataPath == "-" ? "<stdin>" : settings.dataPath)
                }
                reporter.info("the training data ended at step \(session.step)")
                break
            }
            // Images per second include the wait for data: a data-bound run shows it; in a
            // job they count every rank's images (the global batch).
            let seconds = waited + record.seconds
            let images = record.images * (communicator?.size ?? 1)
            window.images += images
            window.seconds += seconds
            window.communication += record.communicationSeconds
            window.wait += record.waitSeconds
            window.steps += 1
            if record.step % settings.logEvery == 0 || record.step == target {
                var fields: [(String, JSONValue)] = [
                    ("step", JSONValue(record.step)),
                    ("lr", .double(record.learningRate)),
                    ("loss", .array(record.losses.map { .double($0.roundedTo(6)) })),
                    ("top1_max", .double(record.maxTop1.roundedTo(3))),
                    ("images_per_s", .double((Double(window.images) / max(1e-9, window.seconds)).roundedTo(2))),
                ]
                if (communicator?.size ?? 1) > 1 {
                    // Mean seconds per step on rank 0 in the all-reduces (transfer) and in
                    // waiting for the slowest rank before the gradient all-reduce.
                    let steps = Double(max(1, window.steps))
                    fields.append(("allreduce_s", .double((window.communication / steps).roundedTo(5))))
                    fields.append(("allreduce_wait_s", .double((window.wait / steps).roundedTo(5))))
                }
                try reporter.log(.object(fields))
                window = (0, 0, 0, 0, 0)
            }
            meter.images += images
            if let line = meter.line(step: record.step, loss: record.losses.first, now: monotonicSeconds(), interval: reporter.progressInterval) {
                reporter.progress(line)
            }
            if record.step % settings.saveEvery == 0 { try save() }
            if let validation, isRoot, let every = settings.validateEvery, record.step % every == 0 {
                validatedAt = record.step
                try reporter.log(validation.run(session))
            }
        }
        try save()
        if let validation, isRoot, session.step > start, validatedAt != session.step {
            try reporter.log(validation.run(session))
        }
        reporter.info("step \(session.step): saved \(settings.checkpointPath)")
        return .finished(step: session.step)
    }

    /// Writes the checkpoint, unless a weight or a momentum value is not finite (an
    /// update from a finite loss can still overflow): then the last good file stays.
    func save() throws(Failure) {
        let c = session.checkpoint()
        let finite = c.weights.parameters.allSatisfy(\.isFinite) && c.weights.buffers.allSatisfy(\.isFinite)
            && (c.training?.momentum.allSatisfy(\.isFinite) ?? true)
        guard finite else {
            throw .data("the weights became non-finite at step \(session.step); \(settings.checkpointPath) keeps the last good step; lower the learning rate (--lr) or check the data")
        }
        if let comm = communicator, comm.size > 1 {
            // Every rank took the same steps, so every rank holds the same state: checked
            // by a hash of its bits before rank 0 writes it.
            let h = Int64(bitPattern: TrainingRun.stateHash(c))
            var lo = [h], hi = [h]
            comm.min(&lo)
            comm.max(&hi)
            guard lo == hi else {
                throw .io("the ranks hold different weights at step \(session.step) (a bug: please report it); \(settings.checkpointPath) keeps the last good step")
            }
            guard comm.isRoot else { return }
        }
        try c.write(to: settings.checkpointPath)
    }

    /// FNV-1a over the bits of the weights, buffers and momentum.
    static func stateHash(_ c: Checkpoint) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ values: [Float]) {
            for v in values { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        }
        mix(c.weights.parameters)
        mix(c.weights.buffers)
        mix(c.training?.momentum ?? [])
        return h
    }
}

/// The archs of an arch JSON-lines file, each checked against `space` (any resolution).
func readArchLines(_ path: String, in space: SearchSpace) throws(Failure) -> [Arch] {
    let bytes = try readWholeFile(path)
    var out: [Arch] = []
    for (i, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
        let at = "\(path):\(i + 1)"
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
        do {
            let json = try Array(line).withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
            let arch = try Arch(json: json)
            var check = arch
            if let r = space.resolutions.first { check.resolution = r }
            try check.validate(in: space)
            out.append(arch)
        } catch let e as any ReportableError {
            throw e.located(at: at)
        } catch {
            throw .data("\(error)", at: at)
        }
    }
    guard !out.isEmpty else { throw .data("no arch lines", at: path) }
    return out
}

/// The image count of a shard directory, from its index.json.
func countImages(_ path: String) throws(Failure) -> Int {
    let index = path + "/index.json"
    guard access(index, R_OK) == 0 else {
        throw .usage("--epochs needs shard files with index.json (\(index): \(errnoMessage())); use --steps")
    }
    let json: JSONValue
    do { json = try JSONValue.parse(String(decoding: try readWholeFile(index), as: UTF8.self)) } catch {
        throw (error as? any ReportableError)?.located(at: index) ?? .data("\(error)", at: index)
    }
    if let n = json["images"]?.intValue { return Int(n) }
    if let shards = json["shards"]?.arrayValue {
        return shards.compactMap { $0["count"]?.intValue ?? $0["images"]?.intValue }.map(Int.init).reduce(0, +)
    }
    throw .data("no image count", at: index)
}

/// Validation of the min and max subnets during training.
struct TrainingValidation {
    let calibration: [BatchLoader.PreparedBatch]
    let validation: [BatchLoader.PreparedBatch]
    /// Calibration and validation images under the evaluation transform that matches the
    /// training augmentation (whole images for none/pad-crop, the official centre crop for train).
    let transform: EvaluationTransform

    init(valPath: String, calibPath: String, batchSize: Int, calibBatches: Int, valBatches: Int?, transform: EvaluationTransform) throws(Failure) {
        self.transform = transform
        do {
            let v = try BatchLoader(source: ShardSource.path(valPath), batchSize: batchSize, resolution: 32, augmentation: .eval, seed: 0, epochs: 1)
            var val: [BatchLoader.PreparedBatch] = []
            while let b = try v.nextPrepared() {
                val.append(b)
                if let m = valBatches, val.count >= m { break }
            }
            validation = val
        } catch { throw error.located(at: valPath) }
        if calibPath == "-" {
            calibration = validation
        } else {
            calibration = try EstimationData.calibrationBatches(calibPath, batchSize: batchSize, batches: calibBatches)
        }
    }

    func run(_ session: TrainingSession) -> JSONValue {
        let ev = SubnetEvaluator(model: session.model, calibration: calibration, validation: validation, augmentation: transform.augmentation)
        let space = session.space
        if let only = session.options.standaloneArch {
            let r = ev.evaluate(only)
            return .object([
                ("step", JSONValue(session.step)), ("val_acc1", .double(r.acc1.roundedTo(3))),
                ("val_loss", .double(r.loss.roundedTo(5))), ("val_images", JSONValue(r.images)),
            ])
        }
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
