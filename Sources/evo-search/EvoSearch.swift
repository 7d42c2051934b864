import ArgumentParser
import FileFormats
import Search
import Supernet
import ToolSupport
import System

@main
struct EvoSearch: Tool {
    static let configuration = CommandConfiguration(
        commandName: "evo-search",
        abstract: "Search the FLOPs-vs-accuracy Pareto front of a space by evolution.",
        discussion: """
            Writes the final Pareto front (archs no other evaluated arch beats on both FLOPs and \
            acc1, within the FLOPs bounds) as arch JSON lines sorted by FLOPs, with flops, params, \
            acc1 and every key the evaluator returned. Progress (generation, evaluations, \
            hypervolume) goes to stderr. With --objective latency the cost is the latency a \
            table from measure-latency --table-out predicts: bounds (--latency-min/-max), front, \
            sort order and hypervolume are in milliseconds, and each line gets latency_ms_pred.

            The evaluator is a command started once as a co-process: it reads arch JSON lines \
            (with flops and params) on stdin and answers one JSON line with acc1 per arch, in \
            order, without waiting for the end of its input (estimate-acc and predict-acc fit). \
            Every arch sent counts against --budget, and no arch is sent twice. \
            --evaluators N keeps N copies of it busy (estimate-acc copies may share one --cache); \
            an evaluator that is an MPI job (mpirun -np N estimate-acc ...) works as one. If it exits, \
            writes garbage, answers too few lines or exceeds --evaluator-timeout, evo-search \
            names the arch in flight, saves the state, writes the front found so far (to \
            FILE.partial with -o FILE; nothing under FILE itself) and exits 1.

            --algorithm front (the default) is ours: variation around the current front, \
            screened by a surrogate refitted to every result. --algorithm official reproduces \
            the official AlphaNet search (min subnet + FLOPs-bounded random parents, best arch \
            per --step MFLOPs bucket, mutation and crossover of bucket winners).

            --state FILE is written after each generation; run the same command again to resume \
            an interrupted search without re-evaluating anything (or with a larger --budget to \
            extend a finished one).

            Examples:
              evo-search --space pipelines/spaces/alphanet.json --evaluator 'python3 ../shared/oracle/oracle.py' \\
                  --flops-min 200 --flops-max 1200 --budget 1000 --seed 1 > front.jsonl
              evo-search --space pipelines/spaces/alphanet.json --evaluator 'estimate-acc --checkpoint ck.safetensors.lz4' \\
                  --budget 3000 --state search.state --log evaluated.jsonl > front.jsonl
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Option(help: ArgumentHelp("Accuracy predictor file to evaluate archs with.", valueName: "file"))
    var predictor: String?

    @Option(help: ArgumentHelp("Shell command that answers arch JSON lines with acc1 (a co-process).", valueName: "command"))
    var evaluator: String?

    @Option(help: ArgumentHelp(
        "Copies of the evaluator to keep busy at once.",
        discussion: "Each generation's archs are dealt out round-robin and answered concurrently, in the order one evaluator would: the results are identical to --evaluators 1 for a deterministic evaluator. For a cluster, each copy can itself be a job step ('srun -n1 estimate-acc ...'), or use one evaluator that is an MPI job ('mpirun -np 8 estimate-acc ...').",
        valueName: "n"))
    var evaluators: Int = 1

    @Option(name: .customLong("evaluator-timeout"), help: ArgumentHelp("Seconds the evaluator may take per answer.", valueName: "seconds"))
    var evaluatorTimeout: Double = 600

    @Option(help: "Archs to evaluate in all (resumed ones included).")
    var budget: Int = 1000

    @Option(name: .customLong("flops-min"), help: ArgumentHelp("Lower FLOPs bound (default: the min subnet's).", valueName: "mflops"))
    var flopsMin: Double?

    @Option(name: .customLong("flops-max"), help: ArgumentHelp("Upper FLOPs bound (default: the max subnet's).", valueName: "mflops"))
    var flopsMax: Double?

    @Option(help: ArgumentHelp("The cost axis of the search: flops (MFLOPs) or latency (milliseconds predicted by --latency-table).", valueName: "objective"))
    var objective: SearchObjectiveKind = .flops

    @Option(name: .customLong("latency-table"), help: ArgumentHelp("Latency table (measure-latency --table-out) for --objective latency.", valueName: "file"))
    var latencyTable: String?

    @Option(name: .customLong("latency-min"), help: ArgumentHelp("Lower latency bound, ms (default: the min subnet's predicted latency).", valueName: "ms"))
    var latencyMin: Double?

    @Option(name: .customLong("latency-max"), help: ArgumentHelp("Upper latency bound, ms (default: the max subnet's predicted latency).", valueName: "ms"))
    var latencyMax: Double?

    @Option(help: "Search algorithm: front (ours: the whole front at once) or official (AlphaNet's per-FLOPs-bucket evolution).")
    var algorithm: SearchAlgorithmKind = .front

    @Option(help: ArgumentHelp("Official: width of the FLOPs buckets of the front.", valueName: "mflops"))
    var step: Double = 10

    @Option(help: "Official: size of the initial population.")
    var population: Int = 512

    @Option(help: "Official: mutants per generation.")
    var mutate: Int = 128

    @Option(help: "Official: crossover children per generation.")
    var crossover: Int = 128

    @Option(name: .customLong("mutate-prob"), help: "Official: probability that mutation changes each gene.")
    var mutateProb: Double = 0.2

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Save the search here after each generation, and resume from it if it exists.", valueName: "file"))
    var state: String?

    @Option(help: ArgumentHelp("Also write every evaluated arch here, in evaluation order.", valueName: "file"))
    var log: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Where to write the front ('-' or nothing: stdout).", valueName: "file"))
    var output: String?

    @Option(name: .customLong("front-size"), help: ArgumentHelp(
        "Write at most N archs of the front, spread evenly over its cost range (both ends kept): fewer archs to re-estimate (default: the whole front).",
        valueName: "n"))
    var frontSize: Int?

    @Option(name: .customLong("hv-floor"), help: ArgumentHelp("Accuracy floor of the hypervolume shown in progress (70: the HV70 of the oracle benchmarks).", valueName: "acc1"))
    var hvFloor: Double = 70

    func validate() throws {
        if (predictor == nil) == (evaluator == nil) { throw ValidationError("give exactly one of --predictor and --evaluator") }
        if budget < 1 { throw ValidationError("--budget must be at least 1") }
        if evaluators < 1 { throw ValidationError("--evaluators must be at least 1") }
        if evaluators > 1 && predictor != nil { throw ValidationError("--evaluators is for --evaluator commands; a predictor runs in-process") }
        if !(evaluatorTimeout > 0) { throw ValidationError("--evaluator-timeout must be positive") }
        if let a = flopsMin, let b = flopsMax, a > b { throw ValidationError("--flops-min \(a) is above --flops-max \(b)") }
        if let a = latencyMin, let b = latencyMax, a > b { throw ValidationError("--latency-min \(a) is above --latency-max \(b)") }
        switch objective {
        case .flops:
            if latencyTable != nil || latencyMin != nil || latencyMax != nil { throw ValidationError("--latency-table, --latency-min and --latency-max go with --objective latency") }
        case .latency:
            if latencyTable == nil { throw ValidationError("--objective latency needs --latency-table (measure-latency --table-out builds one)") }
            if flopsMin != nil || flopsMax != nil { throw ValidationError("--objective latency bounds the latency: use --latency-min/--latency-max, not --flops-min/--flops-max") }
            if algorithm == .official { throw ValidationError("--algorithm official searches FLOPs buckets; use --algorithm front with --objective latency") }
        }
        if let n = frontSize, n < 1 { throw ValidationError("--front-size must be at least 1") }
        if !(step > 0) { throw ValidationError("--step must be positive") }
        if population < 1 || mutate < 0 || crossover < 0 { throw ValidationError("--population must be at least 1, --mutate and --crossover at least 0") }
        if !(0...1).contains(mutateProb) { throw ValidationError("--mutate-prob must be within 0...1") }
    }

    mutating func execute() throws {
        let space = try spaceOptions.load()
        var cost = SearchObjective.flops
        if let path = latencyTable {
            do { cost = .latency(try LatencyTable(json: try JSONValue.parse(String(decoding: try readWholeFile(path), as: UTF8.self)))) } catch let e as Failure {
                throw e.located(at: path)
            } catch { throw Failure.data("\(error)", at: path) }
        }
        let unit = objective == .flops ? "MFLOPs" : "ms"
        let lo = (objective == .flops ? flopsMin : latencyMin) ?? cost.cost(space.minArch, in: space)
        let hi = (objective == .flops ? flopsMax : latencyMax) ?? cost.cost(space.maxArch, in: space)
        guard lo <= hi else { throw Failure.usage("the lower bound \(lo) is above the max subnet's \(hi) \(unit)") }
        var settings = SearchSettings(algorithm: algorithm, seed: seed, bounds: FlopsBounds(min: lo, max: hi), population: population,
                                      mutate: mutate, crossover: crossover, mutateProb: mutateProb, step: step)
        settings.objective = cost
        if objective == .latency { Diagnostics.info("objective: predicted latency, \(lo.formatted)-\(hi.formatted) ms") }
        let scorer: any ArchEvaluator
        if let predictor {
            scorer = try Predictor(contentsOf: predictor).evaluator(name: predictor)
        } else {
            let command = evaluator ?? "", timeout = evaluatorTimeout
            scorer = EvaluatorPool(try (0..<evaluators).map { _ throws(EvaluatorFailure) in try CommandEvaluator(command: command, timeout: timeout) })
        }
        let run = try SearchRun(space: space, settings: settings, budget: budget, statePath: state, evaluator: scorer)
        if run.resumed > 0 { Diagnostics.info("resuming from \(state ?? "?"): \(run.resumed) archs evaluated before") }
        let floor = hvFloor
        let warning: String?
        do {
            warning = try run.run(accuracyFloor: floor) { report, front, hv in
                let replayed = report.replayed > 0 ? ", \(report.replayed) from the state" : ""
                Diagnostics.info("generation \(report.generation): \(report.evaluations) evaluations (\(report.sent) sent\(replayed)), "
                    + "front \(front.count) archs, HV\(floor.formatted) \(hv.formatted)")
            }
        } catch var stopped as SearchRun.Interrupted {
            // Keep what was done: the log and the front so far (the state is saved), the
            // front never under the final name of a finished search.
            try writeLog(stopped.records)
            let partial = output.flatMap { $0 == "-" ? nil : $0 + ".partial" }
            try writeFront(stopped.front, to: partial)
            stopped.frontWrittenTo = partial ?? "<stdout>"
            throw stopped
        }
        if let warning { Diagnostics.warning(warning) }
        if run.search.unreplayed > 0 {
            Diagnostics.warning("\(run.search.unreplayed) results of the state were not asked for again (a different --budget?); they are dropped from the state")
        }
        try writeLog(run.search.records)
        let front = run.search.front
        let written = frontSize.map { ParetoFront.spread(front, count: $0, cost: \.cost) } ?? front
        try writeFront(written, to: output)
        let hv = ParetoFront.hypervolume(front, bounds: settings.bounds, accuracyFloor: floor)
        let kept = written.count < front.count ? " (\(written.count) written, spread over its range)" : ""
        Diagnostics.info("done: \(run.search.records.count) evaluations, front \(front.count) archs\(kept), HV\(floor.formatted) \(hv.formatted)")
    }

    func writeFront(_ front: [EvaluatedArch], to path: String?) throws {
        let sink = try OutputSink(path: path)
        for r in front { try sink.writeLine(r.line) }
        try sink.commit()
    }

    func writeLog(_ records: [EvaluatedArch]) throws {
        guard let log else { return }
        let sink = try OutputSink(path: log)
        for r in records { try sink.writeLine(r.line) }
        try sink.commit()
    }
}

extension Double {
    /// Short text for progress: 70 -> "70", 1.23456 -> "1.2346".
    fileprivate var formatted: String {
        self == rounded() && abs(self) < 1e9 ? String(Int(self)) : String(roundedTo(4))
    }
}
