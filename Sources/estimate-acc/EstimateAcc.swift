import ArgumentParser
import FileFormats
import Supernet
import ToolSupport
import Training
#if canImport(Glibc)
import Glibc
#endif

@main
struct EstimateAcc: Tool {
    static let configuration = CommandConfiguration(
        commandName: "estimate-acc",
        abstract: "Add BN-recalibrated validation accuracy (acc1, acc5, loss) to arch JSON lines.",
        discussion: """
            For each arch line: reset the BatchNorm running statistics of the subnet, recalibrate \
            them on --calib-batches batches of the calibration shards (--transform, file \
            order, the same images for every subnet; cumulative average of per-batch mean and \
            unbiased variance, as the official code), then measure top-1, top-5 (percent) and the \
            mean cross-entropy on the validation shards (or their first --val-limit images). Each \
            line is written back with acc1, acc5, loss, flops, params and provenance \
            (checkpoint_sha256, calib_*, val_sha256, val_images, eval_transform), keeping every other key, in input \
            order, flushed as soon as it is known: estimate-acc can serve as evo-search's \
            --evaluator co-process.

            --cache FILE keeps results (JSON lines, append-only, shareable between processes): an \
            arch already measured with the same checkpoint, calibration and validation data is not \
            recomputed, and an interrupted run loses at most the archs in progress.

            Examples:
              sample-subnets --space pipelines/spaces/tiny.json --count 20 \\
                | estimate-acc --checkpoint demo/supernet.safetensors.lz4 \\
                    --calib demo/data/train --val demo/data/val --val-limit 2000 > accs.jsonl
              evo-search ... --evaluator 'estimate-acc --checkpoint C --calib T --val V --cache acc.cache'
            """)

    @Option(help: ArgumentHelp("Supernet checkpoint (train-supernet, or an imported official state_dict).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Search space JSON (default: the one stored in the checkpoint).", valueName: "file"))
    var space: String?

    @Option(help: ArgumentHelp("Calibration shards: a directory or a shard file (usually training data).", valueName: "shards"))
    var calib: String

    @Option(help: ArgumentHelp("Validation shards: a directory or a shard file.", valueName: "shards"))
    var val: String

    @Option(name: .customLong("calib-batches"), help: "BN calibration batches of --batch-size images (official: 64).")
    var calibBatches = 64

    @Option(name: .customLong("batch-size"), help: "Images per batch, for calibration and validation.")
    var batchSize = 256

    @Option(name: .customLong("val-limit"), help: "Validate on the first N images only (default: all).")
    var valLimit: Int?

    @Option(help: "Subnets evaluated at once, each on its own copy of the model; kernel threads per subnet: cores / jobs. Default 1: one subnet at a time on all cores (on 2 cores 3% faster than one subnet per core, and 29% less memory).")
    var jobs: Int?

    @Option(help: ArgumentHelp("""
        How calibration and validation images become inputs: eval (official: shorter side to \
        resolution/0.875, centre crop; for supernets trained with RandomResizedCrop), resize (the \
        whole image at the resolution; for supernets trained on whole images, e.g. the demo recipe's \
        --augment none), or auto: the one matching the checkpoint's training augmentation (eval for \
        --augment train and for checkpoints without training options, such as imported official \
        ones; resize otherwise). A mismatch costs accuracy: the demo supernet scores ~6 points \
        lower under eval.
        """, valueName: "auto|eval|resize"))
    var transform: String = "auto"

    @Option(help: ArgumentHelp("Result cache (JSON lines, created if missing): known archs are not recomputed.", valueName: "file"))
    var cache: String?

    @Argument(help: ArgumentHelp("Arch JSON lines to read ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    func validate() throws {
        if calibBatches < 1 { throw ValidationError("--calib-batches must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let v = valLimit, v < 1 { throw ValidationError("--val-limit must be at least 1") }
        if let j = jobs, j < 1 { throw ValidationError("--jobs must be at least 1") }
        if transform != "auto" && EvaluationTransform(rawValue: transform) == nil { throw ValidationError("--transform must be auto, eval or resize") }
    }

    mutating func execute() throws {
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let jobs = self.jobs ?? 1
        let ckpt = try loadCheckpoint(checkpoint, space: space)
        let trainedWith = ckpt.training?.info["options"]?["augment"]?.stringValue
        let evaluationTransform = EvaluationTransform(rawValue: transform)
            ?? trainedWith.map { EvaluationTransform.matching(trainingAugment: $0) } ?? .eval
        let checkpointDigest = try tool { try fileSHA256(checkpoint) }
        let cacheFile = try cache.map { path in try tool { try EstimationCache(path: path) } }
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        let data = try tool {
            try EstimationData(calibration: calib, validation: val, batchSize: batchSize, calibBatches: calibBatches, valLimit: valLimit,
                               transform: evaluationTransform)
        }
        // Said once the inputs are known to be good, so a bad file still gives one error line.
        if transform == "auto" {
            Diagnostics.info("evaluation transform \(evaluationTransform.rawValue) (" + (trainedWith.map { "trained with --augment \($0)" } ?? "no training options in the checkpoint") + ")")
        }
        if data.calibration.count < calibBatches {
            Diagnostics.warning("\(calib): only \(data.calibrationImages) images, \(data.calibration.count) calibration batches instead of \(calibBatches)")
        }
        let settings = data.settings
        let estimator = AccuracyEstimator(checkpoint: ckpt, data: data, jobs: jobs, workersPerJob: max(1, cores / jobs))
        let space = ckpt.space
        let progress = Progress()
        let out = StandardOutput.shared

        let pool = OrderedWorkPool<Job, Answer>(jobs: jobs, work: { job, worker in
            let acc = estimator.evaluate(job.arch, job: worker)
            var failure: String?
            do { try cacheFile?.store(acc, checkpoint: checkpointDigest, settings: settings, arch: job.arch) } catch {
                failure = "\(error)"
            }
            return Answer(line: job.line, arch: job.arch, accuracy: acc, cached: false, cacheFailure: failure)
        }, deliver: { _, answer in
            guard progress.error == nil else { return }
            if let f = answer.cacheFailure { progress.error = ToolError.failure(f); return }
            var line = answer.line
            line["acc1"] = .double(answer.accuracy.acc1.roundedTo(4))
            line["acc5"] = .double(answer.accuracy.acc5.roundedTo(4))
            line["loss"] = .double(answer.accuracy.loss.roundedTo(6))
            line["flops"] = .double(answer.arch.flops(in: space).roundedTo(4))
            line["params"] = .double(answer.arch.params(in: space).roundedTo(4))
            line["checkpoint_sha256"] = .string(checkpointDigest)
            for (k, v) in settings.objectValue ?? [] { line[k] = v }
            do {
                try out.write(line.jsonText + "\n")
                try out.flush()
            } catch {
                progress.error = error
                return
            }
            progress.done(cached: answer.cached)
        })

        var stopError: Error?
        do {
            while progress.error == nil, let l = try reader.nextArch(in: space) {
                if let hit = cacheFile?.lookup(checkpoint: checkpointDigest, settings: settings, arch: l.arch) {
                    pool.submit(ready: Answer(line: l.json, arch: l.arch, accuracy: hit, cached: true, cacheFailure: nil))
                } else {
                    pool.submit(Job(line: l.json, arch: l.arch))
                }
            }
        } catch {
            stopError = error
        }
        pool.finish()
        Diagnostics.endProgress()
        if let e = progress.error { throw e }
        if let e = stopError { throw e }
        Diagnostics.info(progress.summary)
    }

    /// Runs a library call, turning its error into a one-line tool error.
    func tool<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EstimationError {
            throw ToolError(error.isData ? .dataError : .failure, error.message, location: error.location)
        }
    }
}

struct Job: Sendable {
    var line: JSONValue
    var arch: Arch
}

struct Answer: Sendable {
    var line: JSONValue
    var arch: Arch
    var accuracy: SubnetAccuracy
    var cached: Bool
    var cacheFailure: String?
}

/// Counts and rate for the progress line; the counts are touched only inside
/// the pool's ordered delivery (one thread at a time) and after `finish()`.
final class Progress: @unchecked Sendable {
    var computed = 0
    var cached = 0
    private var failure: Error?
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    /// The first error of writing the output; read by the input loop too.
    var error: Error? {
        get { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; return failure }
        set { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; if failure == nil { failure = newValue } }
    }
    let start = monotonicSeconds()
    var lastReport = monotonicSeconds()

    func done(cached hit: Bool) {
        if hit { cached += 1 } else { computed += 1 }
        let now = monotonicSeconds()
        Diagnostics.progress(summary)
        if !Diagnostics.stderrIsTerminal && now - lastReport >= 30 {
            Diagnostics.info(summary)
            lastReport = now
        }
    }

    var summary: String {
        let minutes = max(1e-9, (monotonicSeconds() - start) / 60)
        return "\(computed + cached) archs done (\(cached) cached), \((Double(computed) / minutes).roundedTo(2)) subnets/min"
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

