import Cluster
import FileFormats
import Supernet
import Synchronization
import System

/// What `estimate-acc` is asked to do.
public struct EstimationRunSettings: Sendable {
    public var checkpointPath: String
    public var spacePath: String?
    public var calibrationPath: String
    public var validationPath: String
    public var calibrationBatches = 64
    public var batchSize = 256
    public var validationLimit: Int?
    /// Subnets evaluated at once, each on its own copy of the model.
    public var jobs = 1
    /// Kernel threads in all, split over the jobs.
    public var threads = Cores.available
    public var transform = EvaluationTransformChoice.auto
    public var cachePath: String?
    /// Other cache files whose records are added to the cache first.
    public var mergeCachePaths: [String] = []
    /// Only the arch lines of this part of the input (a job-array task).
    public var shard: WorkShard?

    public init(checkpointPath: String, calibrationPath: String, validationPath: String) {
        self.checkpointPath = checkpointPath
        self.calibrationPath = calibrationPath
        self.validationPath = validationPath
    }
}

/// Part `index` of `count` of a list: the items whose 0-based position is `index`
/// modulo `count` (`--shard i/n`, say i = $SLURM_ARRAY_TASK_ID).
public struct WorkShard: Sendable, Equatable {
    public var index: Int
    public var count: Int

    /// Reads "i/n" with 0 <= i < n.
    public init(parsing text: String) throws(Failure) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(i) else {
            throw .usage("--shard must be i/n with 0 <= i < n, not '\(text)'")
        }
        (index, count) = (i, n)
    }

    public func contains(_ position: Int) -> Bool { position % count == index }
}

/// One arch line to estimate: its JSON (every key kept) and the parsed arch.
public struct ArchRequest: Sendable {
    public var line: JSONValue
    public var arch: Arch
    public init(line: JSONValue, arch: Arch) {
        self.line = line
        self.arch = arch
    }
}

/// `estimate-acc` as a library: the checkpoint, its digest, the calibration and
/// validation data, the cache, and the ordered pipeline that evaluates arch lines
/// `jobs` at a time and hands back each enriched line in input order.
public final class EstimationRun {
    public let settings: EstimationRunSettings
    public let checkpoint: Checkpoint
    public let checkpointDigest: String
    /// The one arch a stand-alone checkpoint or an exported subnet serves (nil: a supernet, any arch).
    public let servedArch: ServedArch?
    public let data: EstimationData
    public let transform: EvaluationTransform
    /// Why `transform` was chosen, for `--transform auto` (nil otherwise).
    public let transformReason: String?
    /// Problems worth a warning that do not stop the run.
    public let warnings: [String]
    /// Records added to the cache from each `mergeCachePaths` file.
    public let merged: [(path: String, records: Int)]
    let cache: EstimationCache?
    let estimator: AccuracyEstimator

    public var space: SearchSpace { checkpoint.space }

    public init(_ settings: EstimationRunSettings) throws(Failure) {
        self.settings = settings
        let given = try settings.spacePath.map { p throws(Failure) in try SearchSpace(contentsOf: p) }
        checkpoint = try Checkpoint(contentsOf: settings.checkpointPath, space: given)
        do { servedArch = try checkpoint.servedArch() } catch { throw error.located(at: settings.checkpointPath) }
        var trainedWith: AugmentMode?
        if let text = checkpoint.training?.info["options"]?["augment"]?.stringValue {
            guard let mode = AugmentMode(rawValue: text) else {
                throw .data("the checkpoint's training augment '\(text)' is unknown", at: settings.checkpointPath)
            }
            trainedWith = mode
        }
        if settings.transform == .auto, trainedWith == nil, let t = checkpoint.exportedMetadata["eval_transform"].flatMap(EvaluationTransform.init(rawValue:)) {
            // An exported subnet names the transform it was exported for.
            transform = t
            transformReason = "the exported subnet's eval_transform"
        } else {
            transform = settings.transform.resolved(trainedWith: trainedWith)
            transformReason = settings.transform == .auto
                ? (trainedWith.map { "trained with --augment \($0.rawValue)" } ?? "no training options in the checkpoint") : nil
        }
        checkpointDigest = try fileSHA256(settings.checkpointPath)
        cache = try settings.cachePath.map { p throws(Failure) in try EstimationCache(path: p) }
        var merged: [(path: String, records: Int)] = []
        // In an MPI job rank 0 alone writes the cache.
        if !settings.mergeCachePaths.isEmpty, Communicator.world?.isRoot ?? true {
            guard let cache else { throw .usage("--merge-cache needs --cache, the file to merge into") }
            for p in settings.mergeCachePaths {
                do { merged.append((p, try cache.merge(from: p))) } catch { throw error.located(at: p) }
            }
        }
        self.merged = merged
        data = try EstimationData(calibration: settings.calibrationPath, validation: settings.validationPath, batchSize: settings.batchSize,
                                  calibBatches: settings.calibrationBatches, valLimit: settings.validationLimit, transform: transform)
        try data.checkLabels(classes: checkpoint.space.nClasses)
        var warnings: [String] = []
        if data.calibration.count < settings.calibrationBatches {
            warnings.append("\(settings.calibrationPath): only \(data.calibrationImages) images, \(data.calibration.count) calibration batches instead of \(settings.calibrationBatches)")
        }
        self.warnings = warnings
        estimator = AccuracyEstimator(checkpoint: checkpoint, data: data, jobs: settings.jobs,
                                      workersPerJob: max(1, settings.threads / settings.jobs))
    }

    /// Progress of a run: subnets done, of which from the cache, and the rate.
    public struct Progress: Sendable {
        public var computed = 0
        public var cached = 0
        /// Lines left to the other parts of a `shard`.
        public var otherShards = 0
        public var seconds = 0.0
        public var summary: String {
            "\(computed + cached) archs done (\(cached) cached), \((Double(computed) / max(1e-9, seconds / 60)).roundedTo(2)) subnets/min"
                + (otherShards > 0 ? ", \(otherShards) left to other shards" : "")
        }
    }

    /// The request for an arch line read at `location`; bad data when the checkpoint
    /// cannot evaluate the arch (a stand-alone checkpoint and another arch).
    public func request(line: JSONValue, arch: Arch, location: String) throws(Failure) -> ArchRequest {
        if let why = Checkpoint.refusal(of: arch, served: servedArch) { throw .data(why, at: location) }
        return ArchRequest(line: line, arch: arch)
    }

    /// `line` with the estimate and its provenance added (every other key kept).
    public func annotated(_ request: ArchRequest, _ accuracy: SubnetAccuracy) -> JSONValue {
        var line = request.line
        line["acc1"] = .double(accuracy.acc1.roundedTo(4))
        line["acc5"] = .double(accuracy.acc5.roundedTo(4))
        line["loss"] = .double(accuracy.loss.roundedTo(6))
        line["flops"] = .double(request.arch.flops(in: space).roundedTo(4))
        line["params"] = .double(request.arch.params(in: space).roundedTo(4))
        line["checkpoint_sha256"] = .string(checkpointDigest)
        for (k, v) in data.settings.objectValue ?? [] { line[k] = v }
        return line
    }

    /// Estimates every request `next()` returns, writing each annotated line with `write`
    /// in input order as soon as it and all before it are known (cache hits at once),
    /// and reporting `progress` after each. Stops at the first error of `next`,
    /// `write` or the cache, after the lines already under way.
    public func run(next: () throws -> ArchRequest?, write: @escaping (JSONValue) throws -> Void,
                    progress: @escaping (Progress) -> Void) throws -> Progress {
        struct Answer: Sendable {
            var request: ArchRequest
            var accuracy: SubnetAccuracy
            var cached: Bool
            var failure: Failure?
        }
        final class Shared: @unchecked Sendable {
            let first = Mutex<(any Error)?>(nil)
            var progress = Progress()  // touched only inside the ordered delivery
            func fail(_ e: any Error) { first.withLock { if $0 == nil { $0 = e } } }
            var failed: (any Error)? { first.withLock { $0 } }
        }
        let shared = Shared()
        let start = monotonicSeconds()
        let estimator = self.estimator, cache = self.cache, digest = checkpointDigest, settings = data.settings
        let checkpointPath = self.settings.checkpointPath
        let queue = OrderedWorkQueue<ArchRequest, Answer>(jobs: self.settings.jobs, work: { request, job in
            let acc = estimator.evaluate(request.arch, job: job)
            var failure: Failure?
            if acc.nonFinite {
                failure = .data("the subnet's logits are not finite: the checkpoint's weights or BN statistics hold NaN or infinity", at: checkpointPath)
                return Answer(request: request, accuracy: acc, cached: false, failure: failure)
            }
            do { try cache?.store(acc, checkpoint: digest, settings: settings, arch: request.arch) } catch { failure = (error as? Failure) ?? .io("\(error)") }
            return Answer(request: request, accuracy: acc, cached: false, failure: failure)
        }, deliver: { [self] _, answer in
            guard shared.failed == nil else { return }
            if let f = answer.failure { shared.fail(f); return }
            do { try write(annotated(answer.request, answer.accuracy)) } catch { shared.fail(error); return }
            if answer.cached { shared.progress.cached += 1 } else { shared.progress.computed += 1 }
            shared.progress.seconds = monotonicSeconds() - start
            progress(shared.progress)
        })
        var inputError: (any Error)?
        var position = 0, otherShards = 0
        do {
            while shared.failed == nil, let request = try next() {
                defer { position += 1 }
                if let shard = self.settings.shard, !shard.contains(position) {
                    otherShards += 1
                    continue
                }
                if let hit = cache?.lookup(checkpoint: digest, settings: settings, arch: request.arch) {
                    queue.submit(ready: Answer(request: request, accuracy: hit, cached: true, failure: nil))
                } else {
                    queue.submit(request)
                }
            }
        } catch {
            inputError = error
        }
        queue.finish()
        if let e = shared.failed { throw e }
        if let e = inputError { throw e }
        shared.progress.otherShards = otherShards
        shared.progress.seconds = monotonicSeconds() - start
        return shared.progress
    }
}
