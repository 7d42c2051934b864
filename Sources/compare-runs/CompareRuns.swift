import ArgumentParser
import FileFormats
import Search
import ToolSupport
import System

@main
struct CompareRuns: Tool {
    static let configuration = CommandConfiguration(
        commandName: "compare-runs",
        abstract: "Compare runs of several arms (e.g. seeds of each recipe) measured on the same archs.",
        discussion: """
            Each input is ARM=FILE: the arm's name and the estimate-acc output of one of its \
            runs (give one per seed). Lines with a "role" (min, mid1, max, ...: the same \
            archs in every file) are summarised per arm and role: acc1 mean and sample \
            standard deviation over the arm's runs. Every line of a run, with a role or not, \
            makes its Pareto front (FLOPs vs acc1), whose hypervolume over the FLOPs range of \
            all inputs above --hv-floor is summarised the same way: with the default floor 0 \
            it is the mean over that range of the best top-1 the front offers at no more FLOPs.

            stdout: one JSON line per arm and role {"arm", "role", "flops", "acc1_mean", \
            "acc1_std", "acc1_runs": [...], "runs"} and per arm {"arm", "role": "front", \
            "hv_mean", "hv_std", "hv_runs", "runs"} (plot the roles with plot-pareto --history \
            summary.jsonl --x flops --y acc1_mean --y-error acc1_std --group arm --color-by arm). \
            --markdown writes the same as a table. Runs whose roles or archs differ are bad \
            data (exit 65, naming the file).

            Example:
              compare-runs alpha=alpha/0.jsonl alpha=alpha/1.jsonl kl=kl/0.jsonl kl=kl/1.jsonl --markdown table.md
            """)

    @Argument(help: ArgumentHelp("ARM=FILE: a run's arch lines with acc1 and flops.", valueName: "arm=file"))
    var runs: [String] = []

    @Option(name: .customLong("hv-floor"), help: ArgumentHelp("Accuracy floor of the hypervolume (default 0).", valueName: "acc1"))
    var hvFloor: Double = 0

    @Option(help: ArgumentHelp("Write the comparison as a Markdown table to this file.", valueName: "file"))
    var markdown: String?

    @Option(help: ArgumentHelp("Title of the Markdown table.", valueName: "text"))
    var title: String = "Comparison"

    func validate() throws {
        if runs.isEmpty { throw ValidationError("give at least one ARM=FILE") }
        for r in runs where !r.contains("=") || r.hasPrefix("=") || r.hasSuffix("=") {
            throw ValidationError("'\(r)' is not ARM=FILE")
        }
        if !hvFloor.isFinite { throw ValidationError("--hv-floor must be a finite number") }
    }

    mutating func execute() throws {
        var parsed: [RunComparison.Run] = []
        var paths: [String] = []
        for spec in runs {
            let cut = spec.firstIndex(of: "=") ?? spec.endIndex
            let arm = String(spec[..<cut]), path = String(spec[spec.index(after: cut)...])
            var reader = try JSONLinesReader(path: path)
            defer { reader.close() }
            var points: [RunComparison.Point] = []
            while let line = try reader.next() {
                guard let f = line["flops"]?.doubleValue, f.isFinite, let a = line["acc1"]?.doubleValue, a.isFinite else {
                    throw Failure.data("a line without a finite number under 'flops' and 'acc1'", at: reader.location)
                }
                var role: String?
                if let r = line["role"] {
                    guard let s = r.stringValue else { throw Failure.data("'role' must be a string", at: reader.location) }
                    role = s
                }
                var images: Int?
                if let v = line["val_images"] {
                    guard let d = v.doubleValue, let n = Int(exactly: d), n >= 1 else {
                        throw Failure.data("'val_images' must be a positive integer", at: reader.location)
                    }
                    images = n
                }
                points.append(.init(role: role, flops: f, acc1: a, valImages: images))
            }
            parsed.append(.init(arm: arm, points: points))
            paths.append(path)
        }
        let comparison: RunComparison
        do { comparison = try RunComparison(runs: parsed, accuracyFloor: hvFloor) } catch {
            throw Failure.data(error.description, at: paths.indices.contains(error.run) ? paths[error.run] : nil)
        }
        if let markdown {
            let sink = try OutputSink(path: markdown)
            try sink.write(comparison.markdown(title: title))
            try sink.commit()
        }
        let out = StandardOutput.shared
        for row in comparison.rows {
            try out.write(JSONValue.object([
                ("arm", .string(row.arm)), ("role", .string(row.role)), ("flops", JSONValue(row.flops)),
                ("acc1_mean", JSONValue(row.acc1.mean)), ("acc1_std", JSONValue(row.acc1.std)),
                ("acc1_runs", .array(row.acc1.values.map(JSONValue.init))), ("runs", JSONValue(row.acc1.values.count)),
            ]).jsonText + "\n")
        }
        for arm in comparison.arms {
            guard let hv = comparison.hypervolume[arm] else { continue }
            try out.write(JSONValue.object([
                ("arm", .string(arm)), ("role", .string("front")), ("hv_mean", JSONValue(hv.mean)), ("hv_std", JSONValue(hv.std)),
                ("hv_runs", .array(hv.values.map(JSONValue.init))), ("runs", JSONValue(hv.values.count)),
            ]).jsonText + "\n")
        }
    }
}
