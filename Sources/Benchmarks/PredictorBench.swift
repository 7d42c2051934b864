import FileFormats
import Foundation
import NASCore
import Search
import Supernet
import System

/// Predictor quality and speed on oracle-labelled archs.
///
/// `Benchmarks predictor --data DIR [--seeds 1,2,3,4,5] [--train 512] [--models gbdt,rf,ridge,gbdt+cost]`
/// reads `DIR/seed<S>.jsonl` (arch lines with acc1, e.g. from
/// `sample-subnets --unique | oracle.py`), fits each model to the first
/// `--train` lines with the default options and seed 0, and reports the
/// Kendall tau-b, Spearman rho and RMSE on the remaining lines, as mean and
/// sample standard deviation over the seeds, next to the 5-fold CV tau on the
/// training lines. `gbdt+cost` is gbdt with flops and params added to the
/// official 31 features. With `--speed FILE` it also times fitting (with
/// 5-fold CV) on FILE and predicting 100,000 uniformly sampled archs of
/// `--space`, library calls only (no JSON).
func runPredictorBench(arguments: [String]) {
    var options: [String: String] = [:]
    var i = 0
    while i + 1 < arguments.count {
        options[arguments[i]] = arguments[i + 1]
        i += 2
    }
    let seeds = (options["--seeds"] ?? "1,2,3,4,5").split(separator: ",").compactMap { UInt64($0) }
    let train = Int(options["--train"] ?? "512") ?? 512
    let models = (options["--models"] ?? "gbdt,rf,ridge,gbdt+cost").split(separator: ",").map(String.init)
    if let dir = options["--data"] {
        benchQuality(directory: dir, seeds: seeds, train: train, models: models)
    }
    if let file = options["--speed"], let space = options["--space"] {
        benchSpeed(file: file, spacePath: space)
    }
}

private func readLines(_ path: String) -> [JSONValue] {
    guard let bytes = try? readWholeFile(path) else {
        print("cannot read \(path)")
        return []
    }
    var out: [JSONValue] = []
    for line in bytes.split(separator: 0x0A) where !line.isEmpty {
        if let v = try? Array(line).withUnsafeBufferPointer({ buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }) { out.append(v) }
    }
    return out
}

private func matrix(_ lines: ArraySlice<JSONValue>, _ names: [FeatureName]) -> (FeatureMatrix, [Double])? {
    var x: [Double] = [], y: [Double] = []
    for line in lines {
        guard let t = line["acc1"]?.doubleValue, (try? names.values(in: line, appendingTo: &x)) != nil else { return nil }
        y.append(t)
    }
    return (FeatureMatrix(rows: y.count, columns: names.count, values: x), y)
}

private func meanSD(_ v: [Double]) -> String {
    let m = v.reduce(0, +) / Double(v.count)
    let sd = v.count > 1 ? (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot() : 0
    return String(format: "%.4f ± %.4f", m, sd)
}

private func benchQuality(directory: String, seeds: [UInt64], train: Int, models: [String]) {
    print("| model | test Kendall tau | test Spearman rho | test RMSE | 5-fold CV tau (train) | fit+CV s |")
    print("|---|---|---|---|---|---|")
    for name in models {
        let kindName = name.split(separator: "+").first.map(String.init) ?? name
        guard let kind = PredictorModelKind(rawValue: kindName) else { print("unknown model \(name)"); continue }
        let features = name.hasSuffix("+cost") ? FeatureName.official + [FeatureName(key: "flops"), FeatureName(key: "params")] : FeatureName.official
        var taus: [Double] = [], rhos: [Double] = [], errors: [Double] = [], cvTaus: [Double] = [], seconds: [Double] = []
        for seed in seeds {
            let lines = readLines("\(directory)/seed\(seed).jsonl")
            guard lines.count > train, let (x, y) = matrix(lines[..<train], features), let (xt, yt) = matrix(lines[train...], features) else {
                print("seed \(seed): need more than \(train) lines with acc1 and \(features.map(\.description).joined(separator: ","))")
                return
            }
            var o = PredictorOptions()
            o.kind = kind
            let start = ContinuousClock.now
            guard let p = try? Predictor.fit(x, y, features: features, target: "acc1", options: o) else { print("fit failed"); return }
            let elapsed = ContinuousClock.now - start
            seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            let pred = p.predict(xt)
            taus.append(RankMetrics.kendallTau(pred, yt))
            rhos.append(RankMetrics.spearmanRho(pred, yt))
            errors.append(RankMetrics.rmse(pred, yt))
            cvTaus.append(p.crossValidation?.kendallTau ?? .nan)
        }
        print("| \(name) | \(meanSD(taus)) | \(meanSD(rhos)) | \(meanSD(errors)) | \(meanSD(cvTaus)) | \(String(format: "%.2f", seconds.reduce(0, +) / Double(seconds.count))) |")
    }
    print("(\(seeds.count) data seeds, \(train) training lines each)")
}

private func benchSpeed(file: String, spacePath: String) {
    let lines = readLines(file)
    guard let (x, y) = matrix(lines[...], FeatureName.official), let space = try? SearchSpace(contentsOf: spacePath) else {
        print("cannot read \(file) or \(spacePath)")
        return
    }
    func time(_ body: () -> Void) -> Double {
        let start = ContinuousClock.now
        body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    var sampler = ArchSampler(space: space, seed: 1)
    var values: [Double] = []
    for _ in 0..<100_000 {
        let a = sampler.uniform()
        values += [Double(a.resolution)] + (a.width + a.depth + a.kernelSize + a.expandRatio).map(Double.init)
    }
    let big = FeatureMatrix(rows: 100_000, columns: 31, values: values)
    for kind in PredictorModelKind.allCases {
        var o = PredictorOptions()
        o.kind = kind
        var p: Predictor?
        let fit = time { p = try? Predictor.fit(x, y, features: FeatureName.official, target: "acc1", options: o) }
        guard let p else { print("fit failed"); return }
        var checksum = 0.0
        let predict = time { checksum = p.predict(big).reduce(0, +) }
        print(String(format: "%@: fit %d lines with 5-fold CV %.2f s; predict 100000 archs %.3f s (library, no JSON; mean %.3f)", kind.rawValue, x.rows, fit, predict, checksum / 1e5))
    }
}
