import ArgumentParser
import FileFormats
import Supernet
import ToolSupport
import Training
import System

@main
struct MeasureLatency: Tool {
    static let configuration = CommandConfiguration(
        commandName: "measure-latency",
        abstract: "Time subnets' forward passes on this machine.",
        discussion: """
            Reads arch JSON lines and writes each with its latency: evaluation mode (running BN \
            statistics), our engine, seeded random input at the arch's resolution; --warmup \
            passes, then --repeat timed ones per batch size. `latency_ms` is the median time \
            of one pass at the first --batch size, and `latency` holds per batch size the \
            median, the 10th and 90th percentiles and the runs, in milliseconds per pass. The \
            weights do not change the time: without --checkpoint or --model a freshly \
            initialised supernet of --space is timed. Every other key of a line is kept. \
            Times depend on what else the machine runs: measure on a quiet machine.

            Latency tables: --table-out FILE also times every segment (the stem, each block, \
            the head) of the input archs at the first --batch size and writes a table of them \
            (once-for-all style); --table FILE then predicts instead of timing: each line gets \
            `latency_ms_pred` (the sum of its segments' entries, unseen ones from a fit on \
            MFLOPs) and `latency_table_hits` (how many of its segments the table holds).

            Example:
              sample-subnets --space S -n 50 --seed 1 | measure-latency --space S --batch 1,64 > latency.jsonl
            """)

    @Option(help: ArgumentHelp("Search space JSON (with --checkpoint: a plain state_dict's; alone: the supernet to time).", valueName: "file"))
    var space: String?

    @Option(help: ArgumentHelp("A supernet checkpoint to time (its space).", valueName: "file"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("An exported subnet (export-subnet): its arch only.", valueName: "file"))
    var model: String?

    @Option(help: ArgumentHelp("Batch sizes, comma-separated (default 1,64).", valueName: "n,n"))
    var batch: String = "1,64"

    @Option(help: "Untimed passes before the timed ones (default 3).")
    var warmup: Int = 3

    @Option(help: "Timed passes per batch size (default 10).")
    var `repeat`: Int = 10

    @Option(name: .customLong("table-out"), help: ArgumentHelp("Also build a latency table from the input archs' segments and write it here (JSON).", valueName: "file"))
    var tableOut: String?

    @Option(help: ArgumentHelp("Predict from this latency table instead of timing (adds latency_ms_pred).", valueName: "file"))
    var table: String?

    @Argument(help: ArgumentHelp("Arch JSON lines ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    @OptionGroup var threads: ThreadOptions

    var batchSizes: [Int] { batch.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        if [checkpoint, model].compactMap({ $0 }).count > 1 { throw ValidationError("give --checkpoint or --model, not both") }
        if checkpoint == nil && model == nil && space == nil { throw ValidationError("give --space (or --checkpoint, or --model)") }
        if model != nil && space != nil { throw ValidationError("an exported model holds its space: drop --space") }
        let sizes = batch.split(separator: ",")
        if sizes.isEmpty || sizes.count != batchSizes.count || batchSizes.contains(where: { $0 < 1 }) {
            throw ValidationError("--batch must be positive integers separated by commas, e.g. 1,64")
        }
        if warmup < 0 || `repeat` < 1 { throw ValidationError("--warmup must be at least 0 and --repeat at least 1") }
        if table != nil && tableOut != nil { throw ValidationError("give --table (predict) or --table-out (measure and build), not both") }
    }

    mutating func execute() throws {
        let ckpt: Checkpoint
        if let path = checkpoint ?? model {
            ckpt = try loadCheckpoint(path, space: space)
            if model != nil && ckpt.exportedArch == nil { throw Failure.data("not an exported subnet (a checkpoint goes with --checkpoint)", at: path) }
        } else {
            let s = try SearchSpace(contentsOf: space ?? "")
            ckpt = Checkpoint(space: s, weights: SupernetInitializer.initialWeights(space: s, seed: 0))
        }
        let served = try ckpt.servedArch()
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        let out = StandardOutput.shared
        var count = 0
        if let table {
            let t: LatencyTable
            do { t = try LatencyTable(json: try JSONValue.parse(String(decoding: try readWholeFile(table), as: UTF8.self))) } catch let e as Failure {
                throw e.located(at: table)
            } catch { throw Failure.data("\(error)", at: table) }
            while let line = try reader.nextArch(in: ckpt.space, anyResolution: true) {
                let p = t.predict(line.arch, in: ckpt.space)
                var result = line.json
                result["latency_ms_pred"] = .double(p.ms.roundedTo(4))
                result["latency_table_hits"] = .string("\(p.measuredSegments)/\(p.segments)")
                try out.write(result.jsonText + "\n")
                count += 1
            }
            Diagnostics.info("\(count) archs predicted from \(table) (batch \(t.batch), \(t.threads) threads, \(t.entries.count) entries)")
            return
        }
        let meter = LatencyMeter(checkpoint: ckpt, threads: threads.count)
        var measured: [Arch] = []
        while let line = try reader.nextArch(in: ckpt.space, anyResolution: true) {
            if let why = Checkpoint.refusal(of: line.arch, served: served) { throw Failure.data(why, at: line.location) }
            measured.append(line.arch)
            var result = line.json
            var table: [(String, JSONValue)] = []
            var first: Double?
            for b in batchSizes {
                let r = meter.measure(line.arch, batch: b, warmup: warmup, repeats: `repeat`)
                first = first ?? r.medianMs
                table.append((String(b), .object([("median_ms", .double(r.medianMs.roundedTo(4))), ("p10_ms", .double(r.p10Ms.roundedTo(4))),
                                                   ("p90_ms", .double(r.p90Ms.roundedTo(4))), ("runs", JSONValue(r.runs))])))
            }
            result["latency_ms"] = .double((first ?? 0).roundedTo(4))
            result["latency"] = .object(table)
            result["latency_threads"] = JSONValue(threads.count)
            result["flops"] = .double(line.arch.flops(in: ckpt.space).roundedTo(4))
            try out.write(result.jsonText + "\n")
            try out.flush()
            count += 1
            Diagnostics.progress("\(count) archs timed")
        }
        Diagnostics.endProgress()
        Diagnostics.info("\(count) archs timed at batch \(batch), \(threads.count) threads")
        if let tableOut {
            guard !measured.isEmpty else { throw Failure.data("no arch lines: a latency table needs archs to time", at: input ?? "<stdin>") }
            let t = meter.table(for: measured, batch: batchSizes[0], warmup: warmup, repeats: `repeat`, threads: threads.count)
            let sink = try OutputSink(path: tableOut)
            try sink.write(t.json.jsonText + "\n")
            try sink.commit()
            Diagnostics.info("wrote \(tableOut): \(t.entries.count) segment entries at batch \(t.batch)")
        }
    }
}
