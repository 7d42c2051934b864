import FileFormats
import System

/// The predictor file: human-readable JSON with a format name and version,
///
///     {"format": "alphanet-predictor", "version": 1, "model": "gbdt",
///      "features": ["resolution", "width[0]", ...], "target": "acc1",
///      "cv": {"kendall_tau": ..., "spearman_rho": ..., "rmse": ..., "folds": 5, "kendall_tau_sd": ...},
///      "trained_on": 512, "seed": 0, "params": {hyperparameters},
///      then the fitted model: "init" and "trees" (gbdt, leaf values already
///      scaled by the learning rate), "trees" (rf, averaged), "intercept"
///      and "coefficients" (ridge, raw feature units) or "feature_mean",
///      "feature_scale", "target_mean", "target_scale" and "layers" (mlp)}
///
/// An mlp layer is {"weights": [[...], ...], "biases": [...]}, weights one
/// list per input of that layer's outputs (`MLPLayer`); numbers are written
/// in shortest round-trip form, so a file read back predicts bit-identically.
///
/// Each tree is {"feature", "threshold", "left", "right", "value"} in the
/// layout of `RegressionTree` (feature -1 marks a leaf).
extension Predictor {
    public var json: JSONValue {
        var out: [(String, JSONValue)] = [
            ("format", .string(Predictor.format)),
            ("version", .int(Int64(Predictor.version))),
            ("model", .string(model.kind.rawValue)),
            ("features", .array(features.map { .string($0.description) })),
            ("target", .string(target)),
        ]
        if let cv = crossValidation {
            out.append(("cv", .object([
                ("kendall_tau", .double(cv.kendallTau)),
                ("spearman_rho", .double(cv.spearmanRho)),
                ("rmse", .double(cv.rmse)),
                ("folds", .int(Int64(cv.folds))),
                ("kendall_tau_sd", .double(cv.kendallTauSD)),
            ])))
        }
        out.append(("trained_on", .int(Int64(trainedOn))))
        out.append(("seed", .int(Int64(bitPattern: seed))))
        switch model {
        case let .gbdt(m):
            out.append(("params", .object([
                ("trees", .int(Int64(m.options.trees))),
                ("learning_rate", .double(m.options.learningRate)),
                ("max_depth", .int(Int64(m.options.maxDepth))),
                ("subsample", .double(m.options.subsample)),
                ("min_samples_leaf", .int(Int64(m.options.minSamplesLeaf))),
            ])))
            out.append(("init", .double(m.initial)))
            out.append(("trees", .array(m.trees.map(\.json))))
        case let .rf(m):
            out.append(("params", .object([
                ("trees", .int(Int64(m.options.trees))),
                ("max_depth", m.options.maxDepth.map { .int(Int64($0)) } ?? .null),
                ("min_samples_leaf", .int(Int64(m.options.minSamplesLeaf))),
            ])))
            out.append(("trees", .array(m.trees.map(\.json))))
        case let .ridge(m):
            out.append(("params", .object([("alpha", .double(m.alpha))])))
            out.append(("intercept", .double(m.intercept)))
            out.append(("coefficients", .array(m.coefficients.map { .double($0) })))
        case let .mlp(m):
            out.append(("params", .object([
                ("hidden", .array(m.options.hidden.map { .int(Int64($0)) })),
                ("activation", .string(m.options.activation.rawValue)),
                ("steps", .int(Int64(m.options.steps))),
                ("batch_size", .int(Int64(m.options.batchSize))),
                ("learning_rate", .double(m.options.learningRate)),
                ("weight_decay", .double(m.options.weightDecay)),
            ])))
            out.append(("feature_mean", .array(m.featureMean.map { .double($0) })))
            out.append(("feature_scale", .array(m.featureScale.map { .double($0) })))
            out.append(("target_mean", .double(m.targetMean)))
            out.append(("target_scale", .double(m.targetScale)))
            out.append(("layers", .array(m.layers.map(\.json))))
        }
        return .object(out)
    }

    /// Reads a predictor file's JSON, checking format, version and shapes.
    public init(json: JSONValue) throws(PredictorError) {
        guard case .object = json else { throw PredictorError("a predictor file must hold a JSON object") }
        guard json["format"]?.stringValue == Predictor.format else {
            throw PredictorError("not a predictor file: \"format\" must be \"\(Predictor.format)\"")
        }
        guard let version = json["version"]?.intValue else { throw PredictorError("missing \"version\"") }
        guard version == Int64(Predictor.version) else {
            throw PredictorError("predictor file version \(version) is not supported (this build reads version \(Predictor.version)); refit it with this fit-predictor")
        }
        guard let kindText = json["model"]?.stringValue else { throw PredictorError("missing \"model\"") }
        guard let kind = PredictorModelKind(rawValue: kindText) else {
            throw PredictorError("unknown model \"\(kindText)\" (known: \(PredictorModelKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let names = json["features"]?.arrayValue, !names.isEmpty else { throw PredictorError("\"features\" must be a non-empty list") }
        var features: [FeatureName] = []
        for n in names {
            guard let s = n.stringValue, let f = FeatureName(s) else { throw PredictorError("bad feature name \(n.jsonText)") }
            features.append(f)
        }
        guard let target = json["target"]?.stringValue, !target.isEmpty else { throw PredictorError("missing \"target\"") }
        let trainedOn = Int(json["trained_on"]?.intValue ?? 0)
        let seed = UInt64(bitPattern: json["seed"]?.intValue ?? 0)
        var cv: CrossValidation?
        if let c = json["cv"], case .object = c {
            cv = CrossValidation(folds: Int(c["folds"]?.intValue ?? 0), kendallTau: c["kendall_tau"]?.doubleValue ?? .nan,
                                 spearmanRho: c["spearman_rho"]?.doubleValue ?? .nan, rmse: c["rmse"]?.doubleValue ?? .nan,
                                 kendallTauSD: c["kendall_tau_sd"]?.doubleValue ?? .nan)
        }
        let params = json["params"] ?? .object([])
        func number(_ key: String, in v: JSONValue) throws(PredictorError) -> Double {
            guard let d = v[key]?.doubleValue, d.isFinite else { throw PredictorError("missing or non-numeric \"\(key)\"") }
            return d
        }
        func trees() throws(PredictorError) -> [RegressionTree] {
            guard let list = json["trees"]?.arrayValue, !list.isEmpty else { throw PredictorError("\"trees\" must be a non-empty list") }
            var out: [RegressionTree] = []
            for (i, t) in list.enumerated() {
                let tree = try RegressionTree(json: t, index: i)
                if let why = tree.check(columns: features.count) { throw PredictorError("tree \(i): \(why)") }
                out.append(tree)
            }
            return out
        }
        let model: PredictorModel
        switch kind {
        case .gbdt:
            var o = GradientBoostingOptions()
            o.trees = Int(params["trees"]?.intValue ?? 0)
            o.learningRate = params["learning_rate"]?.doubleValue ?? o.learningRate
            o.maxDepth = Int(params["max_depth"]?.intValue ?? Int64(o.maxDepth))
            o.subsample = params["subsample"]?.doubleValue ?? o.subsample
            o.minSamplesLeaf = Int(params["min_samples_leaf"]?.intValue ?? Int64(o.minSamplesLeaf))
            let t = try trees()
            o.trees = t.count
            model = .gbdt(GradientBoostedTrees(options: o, initial: try number("init", in: json), trees: t))
        case .rf:
            var o = RandomForestOptions()
            o.maxDepth = params["max_depth"]?.intValue.map { Int($0) }
            o.minSamplesLeaf = Int(params["min_samples_leaf"]?.intValue ?? Int64(o.minSamplesLeaf))
            let t = try trees()
            o.trees = t.count
            model = .rf(RandomForest(options: o, trees: t))
        case .ridge:
            guard let c = json["coefficients"]?.arrayValue, c.count == features.count else {
                throw PredictorError("\"coefficients\" must be a list of \(features.count) numbers, one per feature")
            }
            var coefficients: [Double] = []
            for v in c {
                guard let d = v.doubleValue, d.isFinite else { throw PredictorError("\"coefficients\" must hold finite numbers") }
                coefficients.append(d)
            }
            model = .ridge(RidgeRegression(alpha: params["alpha"]?.doubleValue ?? 0, intercept: try number("intercept", in: json), coefficients: coefficients))
        case .mlp:
            var o = MLPOptions()
            if let h = params["hidden"]?.arrayValue { o.hidden = h.map { Int($0.intValue ?? 0) } }
            if let a = params["activation"]?.stringValue {
                guard let f = MLPActivation(rawValue: a) else { throw PredictorError("unknown mlp activation \"\(a)\"") }
                o.activation = f
            }
            o.steps = Int(params["steps"]?.intValue ?? Int64(o.steps))
            o.batchSize = Int(params["batch_size"]?.intValue ?? Int64(o.batchSize))
            o.learningRate = params["learning_rate"]?.doubleValue ?? o.learningRate
            o.weightDecay = params["weight_decay"]?.doubleValue ?? o.weightDecay
            func doubles(_ key: String, in v: JSONValue, where context: String = "") throws(PredictorError) -> [Double] {
                guard let a = v[key]?.arrayValue else { throw PredictorError("\(context)missing \"\(key)\" list") }
                var out: [Double] = []
                out.reserveCapacity(a.count)
                for e in a {
                    guard let d = e.doubleValue, d.isFinite else { throw PredictorError("\(context)\"\(key)\" must hold finite numbers") }
                    out.append(d)
                }
                return out
            }
            guard let list = json["layers"]?.arrayValue, !list.isEmpty else { throw PredictorError("\"layers\" must be a non-empty list") }
            var layers: [MLPLayer] = []
            for (k, l) in list.enumerated() {
                let context = "layer \(k): "
                guard let rows = l["weights"]?.arrayValue, !rows.isEmpty else { throw PredictorError("\(context)\"weights\" must be a non-empty list of lists") }
                var w: [Double] = []
                var outputs = -1
                for (i, row) in rows.enumerated() {
                    let r = try doubles("\(i)", in: .object([("\(i)", row)]), where: context + "weights ")
                    if outputs < 0 { outputs = r.count }
                    guard r.count == outputs, outputs > 0 else { throw PredictorError("\(context)every row of \"weights\" must have the same, non-zero length") }
                    w += r
                }
                let b = try doubles("biases", in: l, where: context)
                guard b.count == outputs else { throw PredictorError("\(context)\"biases\" must hold \(outputs) numbers, one per output") }
                layers.append(MLPLayer(inputs: rows.count, outputs: outputs, weights: w, biases: b))
            }
            let m = MLPRegressor(options: o, featureMean: try doubles("feature_mean", in: json), featureScale: try doubles("feature_scale", in: json),
                                 targetMean: try number("target_mean", in: json), targetScale: try number("target_scale", in: json), layers: layers)
            if let why = m.check(columns: features.count) { throw PredictorError(why) }
            if m.featureScale.contains(where: { !($0 > 0) }) { throw PredictorError("\"feature_scale\" must hold numbers above 0") }
            model = .mlp(m)
        }
        self.init(features: features, target: target, model: model, crossValidation: cv, trainedOn: trainedOn, seed: seed)
    }

    /// Reads a predictor file; errors name the path (unreadable: 1, bad contents: 65).
    public init(contentsOf path: String) throws(Failure) {
        let bytes = try readWholeFile(path)
        let value: JSONValue
        do {
            value = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
        } catch { throw error.located(at: path) }
        do { try self.init(json: value) } catch { throw error.located(at: path) }
    }

    /// The file text: indented JSON, one line per tree array, ending in a newline.
    public var fileText: String { json.prettyText() + "\n" }
}

extension RegressionTree {
    var json: JSONValue {
        .object([
            ("feature", .array(feature.map { .int(Int64($0)) })),
            ("threshold", .array(threshold.map { .double($0) })),
            ("left", .array(left.map { .int(Int64($0)) })),
            ("right", .array(right.map { .int(Int64($0)) })),
            ("value", .array(value.map { .double($0) })),
        ])
    }

    init(json: JSONValue, index: Int) throws(PredictorError) {
        func ints(_ key: String) throws(PredictorError) -> [Int32] {
            guard let a = json[key]?.arrayValue else { throw PredictorError("tree \(index): missing \"\(key)\" list") }
            var out: [Int32] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = v.intValue, i >= -1, i < Int64(Int32.max) else { throw PredictorError("tree \(index): \"\(key)\" must hold integers") }
                out.append(Int32(i))
            }
            return out
        }
        func doubles(_ key: String) throws(PredictorError) -> [Double] {
            guard let a = json[key]?.arrayValue else { throw PredictorError("tree \(index): missing \"\(key)\" list") }
            var out: [Double] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let d = v.doubleValue else { throw PredictorError("tree \(index): \"\(key)\" must hold numbers") }
                out.append(d)
            }
            return out
        }
        self.init(feature: try ints("feature"), threshold: try doubles("threshold"), left: try ints("left"), right: try ints("right"), value: try doubles("value"))
    }
}

extension MLPLayer {
    var json: JSONValue {
        .object([
            ("weights", .array((0..<inputs).map { i in .array(weights[(i * outputs)..<((i + 1) * outputs)].map { .double($0) }) })),
            ("biases", .array(biases.map { .double($0) })),
        ])
    }
}
