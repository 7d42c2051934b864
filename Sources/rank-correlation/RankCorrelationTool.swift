import ArgumentParser
import FileFormats
import Search
import Supernet
import ToolSupport
import System

@main
struct RankCorrelationTool: Tool {
    static let configuration = CommandConfiguration(
        commandName: "rank-correlation",
        abstract: "How well two measurements of the same archs agree on their order.",
        discussion: """
            With two files: the --x value of each arch in the first against the --y value \
            (default: the same key) of the same arch in the second, archs matched by their \
            fields (resolution, width, depth, kernel_size, expand_ratio), in any order; both \
            files must hold the same archs, each once. With one file: its --x against its --y.

            Prints one JSON line: n, Kendall's tau-b and Spearman's rho (ties handled as \
            scipy.stats.kendalltau and spearmanr), the top-k overlap (the share of the k \
            archs largest in --x that are among the k largest in --y), each with a bootstrap \
            95% interval (percentiles of --bootstrap resamples of the archs).

            Examples:
              rank-correlation supernet-acc.jsonl standalone-acc.jsonl
              rank-correlation --x acc1 --y acc1_pred predicted.jsonl
            """)

    @Argument(help: ArgumentHelp("One or two arch JSON-lines files ('-': stdin).", valueName: "file"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Key of the first measurement.", valueName: "key"))
    var x: String = "acc1"

    @Option(help: ArgumentHelp("Key of the second measurement (default: --x, which needs two files).", valueName: "key"))
    var y: String?

    @Option(name: .customLong("top-k"), help: ArgumentHelp("k of the top-k overlap (default: a quarter of the archs, at least 1).", valueName: "k"))
    var topK: Int?

    @Option(help: ArgumentHelp("Bootstrap resamples for the intervals (0: none).", valueName: "n"))
    var bootstrap: Int = 1000

    @Option(help: "Seed of the bootstrap.")
    var seed: UInt64 = 0

    func validate() throws {
        guard (1...2).contains(inputs.count) else { throw ValidationError("give one file (with --x and --y) or two files") }
        if inputs.count == 1 && (y == nil || y == x) { throw ValidationError("with one file give two different keys: --x KEY --y KEY") }
        if inputs.count == 2 && inputs[0] == "-" && inputs[1] == "-" { throw ValidationError("only one input can be stdin") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if bootstrap < 0 { throw ValidationError("--bootstrap must be 0 or more") }
    }

    /// The lines of a file as (arch key, value of `key`), in file order.
    static func read(_ path: String, key: String) throws -> [(arch: String, value: Double, location: String)] {
        var reader = try JSONLinesReader(path: path)
        defer { reader.close() }
        var out: [(String, Double, String)] = []
        while let line = try reader.next() {
            let arch: Arch
            do { arch = try Arch(json: line) } catch { throw Failure.data("not an arch: \(error)", at: reader.location) }
            guard let v = line[key]?.doubleValue, v.isFinite else { throw Failure.data("no finite number under '\(key)'", at: reader.location) }
            out.append((arch.key, v, reader.location))
        }
        return out
    }

    mutating func execute() throws {
        let yKey = y ?? x
        var xs: [Double] = [], ys: [Double] = []
        if inputs.count == 1 {
            var reader = try JSONLinesReader(path: inputs[0])
            defer { reader.close() }
            while let line = try reader.next() {
                guard let a = line[x]?.doubleValue, a.isFinite, let b = line[yKey]?.doubleValue, b.isFinite else {
                    throw Failure.data("no finite numbers under '\(x)' and '\(yKey)'", at: reader.location)
                }
                xs.append(a)
                ys.append(b)
            }
        } else {
            let first = try Self.read(inputs[0], key: x), second = try Self.read(inputs[1], key: yKey)
            var byArch: [String: (value: Double, location: String)] = [:]
            for s in second {
                if let seen = byArch[s.arch] { throw Failure.data("the arch of \(seen.location) again", at: s.location) }
                byArch[s.arch] = (s.value, s.location)
            }
            var used = Set<String>()
            for f in first {
                guard used.insert(f.arch).inserted else { throw Failure.data("an arch given twice", at: f.location) }
                guard let match = byArch[f.arch] else { throw Failure.data("this arch is not in \(inputs[1])", at: f.location) }
                xs.append(f.value)
                ys.append(match.value)
            }
            if let extra = second.first(where: { !used.contains($0.arch) }) {
                throw Failure.data("this arch is not in \(inputs[0])", at: extra.location)
            }
        }
        guard xs.count >= 2 else { throw Failure.data("needs at least 2 archs, found \(xs.count)", at: inputs[0]) }
        let k = topK ?? max(1, xs.count / 4)
        guard k <= xs.count else { throw Failure.usage("--top-k \(k) is more than the \(xs.count) archs") }
        let c = RankCorrelation(xs, ys, topK: k, resamples: bootstrap, seed: seed)
        func interval(_ e: RankCorrelation.Estimate) -> JSONValue {
            bootstrap == 0 || !e.low.isFinite || !e.high.isFinite ? .null : .array([JSONValue(e.low), JSONValue(e.high)])
        }
        func number(_ v: Double) -> JSONValue { v.isFinite ? JSONValue(v) : .null }
        let line = JSONValue.object([
            ("n", JSONValue(c.count)), ("x", .string(x)), ("y", .string(yKey)),
            ("kendall_tau", number(c.kendallTau.value)), ("kendall_tau_ci95", interval(c.kendallTau)),
            ("spearman_rho", number(c.spearmanRho.value)), ("spearman_rho_ci95", interval(c.spearmanRho)),
            ("top_k", JSONValue(k)), ("top_k_overlap", number(c.topKOverlap.value)), ("top_k_overlap_ci95", interval(c.topKOverlap)),
            ("bootstrap", JSONValue(bootstrap)), ("seed", .string(String(seed))),
        ])
        try StandardOutput.shared.write(line.jsonText + "\n")
    }
}
