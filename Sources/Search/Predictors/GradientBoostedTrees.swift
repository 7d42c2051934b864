import NASCore

/// Hyperparameters of least-squares gradient boosting.
public struct GradientBoostingOptions: Sendable, Equatable {
    public var trees: Int = 800
    /// Shrinkage: each tree's prediction is scaled by this before it is added.
    public var learningRate: Double = 0.02
    public var maxDepth: Int = 5
    /// Fraction of the samples drawn (without replacement) to fit each tree.
    public var subsample: Double = 0.5
    public var minSamplesLeaf: Int = 3

    public init() {}

    /// Nil when valid, else what is wrong.
    public var problem: String? {
        if trees < 1 { return "trees must be at least 1" }
        if !(learningRate > 0 && learningRate <= 1) { return "learning rate must be in (0, 1]" }
        if maxDepth < 1 { return "max depth must be at least 1" }
        if !(subsample > 0 && subsample <= 1) { return "subsample must be in (0, 1]" }
        if minSamplesLeaf < 1 { return "min samples per leaf must be at least 1" }
        return nil
    }
}

/// Gradient-boosted regression trees for squared error (Friedman's
/// stochastic gradient boosting, as scikit-learn's GradientBoostingRegressor
/// with loss="squared_error"): `F_0 = mean(y)`, then for m = 1...M a tree
/// `h_m` is fitted to the residuals `y - F_{m-1}` on a random subsample and
/// `F_m = F_{m-1} + learningRate * h_m`. The prediction is `F_M(x)`.
/// Deterministic for a seed.
public struct GradientBoostedTrees: Sendable, Equatable {
    public var options: GradientBoostingOptions
    public var initial: Double
    /// Trees whose leaf values are already scaled by the learning rate.
    public var trees: [RegressionTree]

    public init(options: GradientBoostingOptions, initial: Double, trees: [RegressionTree]) {
        self.options = options
        self.initial = initial
        self.trees = trees
    }

    public static func fit(_ x: FeatureMatrix, _ y: [Double], options: GradientBoostingOptions, seed: UInt64) -> GradientBoostedTrees {
        precondition(x.rows == y.count && x.rows > 0, "one target per row, at least one row")
        precondition(options.problem == nil, options.problem ?? "")
        let data = BinnedFeatures(x)
        let n = x.rows
        let initial = y.reduce(0, +) / Double(n)
        var f = [Double](repeating: initial, count: n)
        var residual = [Double](repeating: 0, count: n)
        var random = SeededRandom(seed: seed)
        let take = max(1, min(n, Int((options.subsample * Double(n)).rounded())))
        var perm = (0..<n).map { Int32($0) }
        let limits = TreeLimits(maxDepth: options.maxDepth, minSamplesLeaf: options.minSamplesLeaf)
        var trees: [RegressionTree] = []
        trees.reserveCapacity(options.trees)
        for _ in 0..<options.trees {
            for i in 0..<n { residual[i] = y[i] - f[i] }
            // The first `take` entries of a partial Fisher-Yates shuffle.
            if take < n {
                for i in 0..<take {
                    let j = i + Int(random.next() % UInt64(n - i))
                    perm.swapAt(i, j)
                }
            }
            var (tree, bins) = TreeBuilder.fit(data: data, target: residual, rows: Array(perm[0..<take]), limits: limits)
            for k in tree.value.indices { tree.value[k] *= options.learningRate }
            for i in 0..<n { f[i] += tree.predictBinned(data, row: i, splitBin: bins) }
            trees.append(tree)
        }
        return GradientBoostedTrees(options: options, initial: initial, trees: trees)
    }

    /// `F_M(x)` for one sample.
    public func predict(_ x: UnsafeBufferPointer<Double>) -> Double {
        var s = 0.0
        for t in trees { s += t.predict(x) }
        return initial + s
    }
}
