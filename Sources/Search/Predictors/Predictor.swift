import FileFormats
import NASCore
import System

/// The model families `fit-predictor` offers.
public enum PredictorModelKind: String, CaseIterable, Sendable {
    /// Gradient-boosted trees (the default).
    case gbdt
    /// Random forest.
    case rf
    /// Ridge regression on standardised features.
    case ridge
    /// Multilayer perceptron on standardised features (`MLPRegressor`).
    case mlp
}

/// A fitted model of one family.
public enum PredictorModel: Sendable, Equatable {
    case gbdt(GradientBoostedTrees)
    case rf(RandomForest)
    case ridge(RidgeRegression)
    case mlp(MLPRegressor)

    public var kind: PredictorModelKind {
        switch self {
        case .gbdt: return .gbdt
        case .rf: return .rf
        case .ridge: return .ridge
        case .mlp: return .mlp
        }
    }

    /// The prediction for one sample.
    public func predict(_ x: UnsafeBufferPointer<Double>) -> Double {
        switch self {
        case let .gbdt(m): return m.predict(x)
        case let .rf(m): return m.predict(x)
        case let .ridge(m): return m.predict(x)
        case let .mlp(m): return m.predict(x)
        }
    }

    /// Predictions for every row of `x`, computed on all cores for large inputs.
    public func predict(_ x: FeatureMatrix) -> [Double] {
        let (packed, offset, scale): (PackedTrees?, Double, Double)
        switch self {
        case let .gbdt(m): (packed, offset, scale) = (PackedTrees(m.trees), m.initial, 1)
        case let .rf(m): (packed, offset, scale) = (PackedTrees(m.trees), 0, 1 / Double(m.trees.count))
        case .ridge, .mlp: (packed, offset, scale) = (nil, 0, 1)
        }
        let chunk = 2048
        let chunks = (x.rows + chunk - 1) / chunk
        let parts = parallelMap(count: chunks) { k -> [Double] in
            let rows = (k * chunk)..<min(x.rows, (k + 1) * chunk)
            return x.values.withUnsafeBufferPointer { all -> [Double] in
                guard let packed else {
                    return rows.map { r in predict(UnsafeBufferPointer(rebasing: all[(r * x.columns)..<((r + 1) * x.columns)])) }
                }
                var out = [Double](repeating: 0, count: rows.count)
                out.withUnsafeMutableBufferPointer { packed.sums(all, columns: x.columns, rows: rows, into: $0) }
                // Same arithmetic as predict(_:) on one row: offset + sum (gbdt), sum / count (rf).
                return out.map { offset + $0 * scale }
            }
        }
        return parts.flatMap { $0 }
    }

    /// Fits a model of `kind` to rows of `x` and targets `y`.
    public static func fit(_ kind: PredictorModelKind, _ x: FeatureMatrix, _ y: [Double], options: PredictorOptions, seed: UInt64) -> PredictorModel {
        switch kind {
        case .gbdt: return .gbdt(GradientBoostedTrees.fit(x, y, options: options.gbdt, seed: seed))
        case .rf: return .rf(RandomForest.fit(x, y, options: options.rf, seed: seed))
        case .ridge: return .ridge(RidgeRegression.fit(x, y, alpha: options.ridgeAlpha))
        case .mlp: return .mlp(MLPRegressor.fit(x, y, options: options.mlp, seed: seed))
        }
    }
}

/// Everything that decides a fit: the family, its hyperparameters, the
/// number of cross-validation folds and the seed.
public struct PredictorOptions: Sendable, Equatable {
    public var kind: PredictorModelKind = .gbdt
    public var gbdt = GradientBoostingOptions()
    public var rf = RandomForestOptions()
    public var ridgeAlpha: Double = 1.0
    public var mlp = MLPOptions()
    /// k of k-fold cross-validation; 0 skips it.
    public var folds: Int = 5
    public var seed: UInt64 = 0

    public init() {}

    /// Nil when valid, else what is wrong.
    public var problem: String? {
        if folds == 1 || folds < 0 { return "folds must be 0 (no cross-validation) or at least 2" }
        if !(ridgeAlpha >= 0) { return "ridge alpha must be at least 0" }
        switch kind {
        case .gbdt: return gbdt.problem
        case .rf: return rf.problem
        case .ridge: return nil
        case .mlp: return mlp.problem
        }
    }

    /// The fewest samples a fit accepts: two per fold, and at least 10.
    public var minimumSamples: Int { max(10, 2 * folds) }
}

/// k-fold cross-validated quality: the mean over folds of each fold's
/// Kendall tau-b, Spearman rho and RMSE on its held-out samples, each fold's
/// model fitted to the other k - 1 folds. `kendallTauSD` is the sample
/// standard deviation of the per-fold tau.
public struct CrossValidation: Sendable, Equatable {
    public var folds: Int
    public var kendallTau: Double
    public var spearmanRho: Double
    public var rmse: Double
    public var kendallTauSD: Double

    public init(folds: Int, kendallTau: Double, spearmanRho: Double, rmse: Double, kendallTauSD: Double) {
        self.folds = folds
        self.kendallTau = kendallTau
        self.spearmanRho = spearmanRho
        self.rmse = rmse
        self.kendallTauSD = kendallTauSD
    }
}

/// Why a predictor could not be fitted or read.
public struct PredictorError: ReportableError, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    /// A predictor file or training set that cannot be used: bad data (65).
    public var status: ExitStatus { .dataError }
}

/// An accuracy predictor: a model over named features of arch lines
/// (`FeatureName.official` by default) predicting the value under `target`,
/// with the cross-validated quality measured when it was fitted.
public struct Predictor: Sendable, Equatable {
    public static let format = "alphanet-predictor"
    public static let version = 1

    public var features: [FeatureName]
    public var target: String
    public var model: PredictorModel
    public var crossValidation: CrossValidation?
    public var trainedOn: Int
    public var seed: UInt64

    public init(features: [FeatureName], target: String, model: PredictorModel, crossValidation: CrossValidation?, trainedOn: Int, seed: UInt64) {
        self.features = features
        self.target = target
        self.model = model
        self.crossValidation = crossValidation
        self.trainedOn = trainedOn
        self.seed = seed
    }

    /// Fits `options.kind` to all of `x`, `y`, and cross-validates it with
    /// `options.folds` folds: samples are shuffled with the seed and sample at
    /// shuffled position p goes to fold `p % folds`. Fold `f` is fitted with
    /// seed stream `f + 1`, the final model with `options.seed`; fits run in
    /// parallel and the result is the same for a seed.
    public static func fit(_ x: FeatureMatrix, _ y: [Double], features: [FeatureName], target: String, options: PredictorOptions) throws(PredictorError) -> Predictor {
        precondition(x.rows == y.count, "one target per row")
        precondition(x.columns == features.count, "one column per feature")
        if let p = options.problem { throw PredictorError(p) }
        guard x.rows >= options.minimumSamples else {
            let why = options.folds > 0 ? "2 per fold for \(options.folds) folds, and at least 10" : "at least 10"
            throw PredictorError("only \(x.rows) samples; a fit needs at least \(options.minimumSamples) (\(why))")
        }
        guard y.allSatisfy(\.isFinite) else { throw PredictorError("a target value is not finite") }
        let k = options.folds
        let order = shuffled(count: x.rows, seed: options.seed)
        // Job 0 is the final model; job f + 1 fits without fold f and scores fold f.
        let jobs = parallelMap(count: k + 1) { job -> (PredictorModel, [Double], [Double]) in
            if job == 0 { return (PredictorModel.fit(options.kind, x, y, options: options, seed: options.seed), [], []) }
            let f = job - 1
            let test = order.indices.filter { $0 % k == f }.map { order[$0] }
            let train = order.indices.filter { $0 % k != f }.map { order[$0] }
            var stream = SeededRandom.stream(seed: options.seed, index: UInt64(job))
            let model = PredictorModel.fit(options.kind, x.selecting(rows: train), train.map { y[$0] }, options: options, seed: stream.next())
            return (model, model.predict(x.selecting(rows: test)), test.map { y[$0] })
        }
        var cv: CrossValidation?
        if k >= 2 {
            let folds = jobs.dropFirst()
            let taus: [Double] = folds.map { RankMetrics.kendallTau($0.1, $0.2) }
            let rhos: [Double] = folds.map { RankMetrics.spearmanRho($0.1, $0.2) }
            let errors: [Double] = folds.map { RankMetrics.rmse($0.1, $0.2) }
            func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
            let tauMean = mean(taus)
            var squares = 0.0
            for t in taus { squares += (t - tauMean) * (t - tauMean) }
            let tauSD = (squares / Double(k - 1)).squareRoot()
            cv = CrossValidation(folds: k, kendallTau: tauMean, spearmanRho: mean(rhos), rmse: mean(errors), kendallTauSD: tauSD)
        }
        return Predictor(features: features, target: target, model: jobs[0].0, crossValidation: cv, trainedOn: x.rows, seed: options.seed)
    }

    /// 0..<count in a Fisher-Yates order drawn with `seed`.
    static func shuffled(count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        var random = SeededRandom(seed: seed)
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(random.next() % UInt64(i + 1)))
        }
        return order
    }

    /// Predictions for every row of `x` (columns in `features` order).
    public func predict(_ x: FeatureMatrix) -> [Double] {
        precondition(x.columns == features.count, "one column per feature")
        return model.predict(x)
    }
}

extension Predictor {
    /// Predictions for arch lines, reading each line's features by name.
    public func predict(lines: [JSONValue]) throws(FeatureError) -> [Double] {
        var values: [Double] = []
        values.reserveCapacity(lines.count * features.count)
        for line in lines { try features.values(in: line, appendingTo: &values) }
        return predict(FeatureMatrix(rows: lines.count, columns: features.count, values: values))
    }
}
