import ArgumentParser
import Cluster
import FileFormats
import ToolSupport
import Training
import System

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

            Under mpirun (mpirun -np N estimate-acc ...) the ranks share the work: rank 0 \
            reads the input and the cache and writes every line in input order, the lines one \
            process writes; each rank estimates one subnet at a time (--jobs 1).

            Without MPI, split the work over a job array: task i of n runs with --shard i/n \
            (its lines only, in input order) and its own --cache (or one on a shared file \
            system); afterwards one run with --cache ALL --merge-cache C0 --merge-cache C1 ... \
            over the whole input computes nothing and prints every line in input order.

            Examples:
              sample-subnets --space pipelines/spaces/tiny.json --count 20 \\
                | estimate-acc --checkpoint demo/supernet.safetensors.lz4 \\
                    --calib demo/data/train --val demo/data/val --val-limit 2000 > accs.jsonl
              evo-search ... --evaluator 'estimate-acc --checkpoint C --calib T --val V --cache acc.cache'
              estimate-acc ... --shard $SLURM_ARRAY_TASK_ID/8 --cache acc-$SLURM_ARRAY_TASK_ID.jsonl archs.jsonl
            """)

    @OptionGroup var checkpointOptions: CheckpointOptions

    @Option(help: ArgumentHelp("Calibration shards: a directory or a shard file (usually training data).", valueName: "shards"))
    var calib: String

    @Option(help: ArgumentHelp("Validation shards: a directory or a shard file.", valueName: "shards"))
    var val: String

    @OptionGroup var batches: EvaluationBatchOptions

    @Option(name: .customLong("val-limit"), help: "Validate on the first N images only (default: all).")
    var valLimit: Int?

    @Option(help: "Subnets evaluated at once, each on its own copy of the model, --threads split between them (default 1: one subnet at a time on every thread, the fastest and leanest on a few cores; see BENCHMARKS.md).")
    var jobs = 1

    @OptionGroup var threads: ThreadOptions

    @Option(help: ArgumentHelp("""
        How calibration and validation images become inputs: eval (official: shorter side to \
        resolution/0.875, centre crop; for supernets trained with RandomResizedCrop), resize (the \
        whole image at the resolution; for supernets trained on whole images, e.g. the demo recipe's \
        --augment none), or auto: the one matching the checkpoint's training augmentation (eval for \
        --augment train and for checkpoints without training options, such as imported official \
        ones; resize otherwise). A mismatch costs accuracy.
        """))
    var transform: EvaluationTransformChoice = .auto

    @Option(help: ArgumentHelp("Result cache (JSON lines, created if missing): known archs are not recomputed.", valueName: "file"))
    var cache: String?

    @Option(name: .customLong("merge-cache"), help: ArgumentHelp("Another cache whose records are added to --cache first (repeatable).", valueName: "file"))
    var mergeCache: [String] = []

    @Option(help: ArgumentHelp("Only the lines at 0-based positions i, i+n, i+2n, ... (a job-array task).", valueName: "i/n"))
    var shard: String?

    @Argument(help: ArgumentHelp("Arch JSON lines to read ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    func validate() throws {
        if let v = valLimit, v < 1 { throw ValidationError("--val-limit must be at least 1") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if jobs > 1, Communicator.isLaunched { throw ValidationError("--jobs must be 1 under mpirun: the ranks share the work") }
    }

    mutating func execute() throws {
        var settings = EstimationRunSettings(checkpointPath: checkpointOptions.checkpoint, calibrationPath: calib, validationPath: val)
        settings.spacePath = checkpointOptions.space
        settings.calibrationBatches = batches.calibBatches
        settings.batchSize = batches.batchSize
        settings.validationLimit = valLimit
        settings.jobs = jobs
        settings.threads = threads.count
        settings.transform = transform
        settings.cachePath = cache
        settings.mergeCachePaths = mergeCache
        settings.shard = try shard.map { s throws(Failure) in try WorkShard(parsing: s) }
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        let run = try EstimationRun(settings)
        let job = Communicator.world.flatMap { $0.size > 1 ? $0 : nil }
        let root = job?.isRoot ?? true
        // Said once the inputs are known to be good, so a bad file still gives one error line.
        if root {
            if let why = run.transformReason { Diagnostics.info("evaluation transform \(run.transform.rawValue) (\(why))") }
            for w in run.warnings { Diagnostics.warning(w) }
            for m in run.merged { Diagnostics.info("merged \(m.records) records of \(m.path) into \(cache ?? "")") }
            if let job { Diagnostics.info("an MPI job of \(job.size) ranks: one subnet at a time on each") }
        }
        let out = StandardOutput.shared
        var lastReport = monotonicSeconds()
        let space = run.space
        let next = { () throws -> ArchRequest? in
            try reader.nextArch(in: space).map { a throws in try run.request(line: a.json, arch: a.arch, location: a.location) }
        }
        let write = { (line: JSONValue) throws in
            try out.write(line.jsonText + "\n")
            try out.flush()
        }
        let progress = { (p: EstimationRun.Progress) in
            Diagnostics.progress(p.summary)
            if !Diagnostics.stderrIsTerminal && monotonicSeconds() - lastReport >= 30 {
                Diagnostics.info(p.summary)
                lastReport = monotonicSeconds()
            }
        }
        let done = try job.map { try run.run(on: $0, next: next, ready: { reader.isReady }, write: write, progress: progress) }
            ?? run.run(next: next, write: write, progress: progress)
        guard root else { return }
        Diagnostics.endProgress()
        Diagnostics.info(done.summary)
    }
}
