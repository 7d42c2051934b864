import FileFormats
import Search
import Supernet

#if canImport(Glibc)
import Glibc
#endif

/// `Benchmarks search [--space S] [--evaluator CMD] [--seeds N] [--budgets 1000,3000]
/// [--algorithms front,official] [--flops-min 200 --flops-max 1200]`:
/// runs evo-search's algorithms in-process against the oracle co-process and
/// prints, per algorithm and budget, HV70 (mean +- sd over the seeds) and the
/// best acc1 under FLOPs caps, as a Markdown table (Scripts/bench-search).
func runSearchBench(arguments: [String]) {
    var options: [String: String] = [
        "space": "pipelines/spaces/alphanet.json",
        "evaluator": "python3 ../shared/oracle/oracle.py",
        "seeds": "5", "budgets": "1000,3000", "algorithms": "front,official",
        "flops-min": "200", "flops-max": "1200",
    ]
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        guard a.hasPrefix("--"), i + 1 < arguments.count, options[String(a.dropFirst(2))] != nil else {
            note("bench search: unknown or incomplete option \(a); options: \(options.keys.sorted().map { "--" + $0 }.joined(separator: " "))\n")
            exit(64)
        }
        options[String(a.dropFirst(2))] = arguments[i + 1]
        i += 2
    }
    func list(_ key: String) -> [String] { (options[key] ?? "").split(separator: ",").map(String.init) }
    let space: SearchSpace
    do { space = try SearchSpace(contentsOf: options["space"] ?? "") } catch {
        note("bench search: \(error)\n")
        exit(65)
    }
    let seeds = UInt64(options["seeds"] ?? "") ?? 5
    let budgets = list("budgets").compactMap { Int($0) }
    let algorithms = list("algorithms").compactMap { SearchAlgorithmKind(rawValue: $0) }
    let bounds = FlopsBounds(min: Double(options["flops-min"] ?? "") ?? 200, max: Double(options["flops-max"] ?? "") ?? 1200)
    let caps: [Double] = [250, 300, 350, 450, 600, 800]
    let command = options["evaluator"] ?? ""

    print("| algorithm | evaluations | HV70 mean ± sd | " + caps.map { "best acc1 ≤\(Int($0))" }.joined(separator: " | ") + " | seconds/run |")
    print("|---|---|---|" + caps.map { _ in "---|" }.joined() + "---|")
    for kind in algorithms {
        for budget in budgets {
            var hvs: [Double] = []
            var best = [[Double]](repeating: [], count: caps.count)
            var seconds = 0.0
            for seed in 1...seeds {
                let start = now()
                let settings = SearchSettings(algorithm: kind, seed: seed, bounds: bounds)
                do {
                    let evaluator = try CommandEvaluator(command: command, timeout: 60)
                    let search = try EvolutionarySearch(space: space, bounds: bounds, budget: budget,
                                                        algorithm: settings.makeAlgorithm(space: space),
                                                        evaluator: evaluator)
                    try search.run { _ in }
                    _ = evaluator.finish()
                    let front = search.front
                    hvs.append(ParetoFront.hypervolume(front, bounds: bounds, accuracyFloor: 70))
                    for (c, cap) in caps.enumerated() {
                        best[c].append(front.filter { $0.flops <= cap }.map(\.acc1).max() ?? .nan)
                    }
                } catch {
                    note("bench search: \(kind.rawValue) budget \(budget) seed \(seed): \(error)\n")
                    exit(1)
                }
                seconds += now() - start
                note("bench search: \(kind.rawValue) budget \(budget) seed \(seed): HV70 \(hvs.last.map { fmt($0, 4) } ?? "-")\n")
            }
            let (m, sd) = meanSD(hvs)
            let capText = best.map { fmt(meanSD($0).0, 2) }.joined(separator: " | ")
            print("| \(kind.rawValue) | \(budget) | \(fmt(m, 3)) ± \(fmt(sd, 3)) | \(capText) | \(fmt(seconds / Double(seeds), 2)) |")
        }
    }
    print("\nHV70 over FLOPs \(fmt(bounds.min, 0))-\(fmt(bounds.max, 0)), acc1 floor 70; best acc1 columns are means over seeds 1-\(seeds) of the front's best arch under each FLOPs cap.")
}

private func meanSD(_ xs: [Double]) -> (Double, Double) {
    guard !xs.isEmpty else { return (.nan, .nan) }
    let m = xs.reduce(0, +) / Double(xs.count)
    guard xs.count > 1 else { return (m, 0) }
    let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    return (m, v.squareRoot())
}

private func fmt(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "-" }
    var s = String(x.roundedTo(digits))
    if digits == 0, s.hasSuffix(".0") { s.removeLast(2) }
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < digits { s += String(repeating: "0", count: digits - have) }
    }
    return s
}

/// A line on stderr (progress and errors; stdout carries the table).
private func note(_ s: String) {
    let bytes = Array(s.utf8)
    bytes.withUnsafeBytes { raw in _ = write(2, raw.baseAddress, raw.count) }
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
