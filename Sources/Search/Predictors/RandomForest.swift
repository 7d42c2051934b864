import NASCore

/// Hyperparameters of a random forest.
public struct RandomForestOptions: Sendable, Equatable {
    public var trees: Int = 100
    /// Nil: grow until leaves are pure (scikit-learn's default).
    public var maxDepth: Int? = nil
    public var minSamplesLeaf: Int = 1

    public init() {}

    public var problem: String? {
        if trees < 1 { return "trees must be at least 1" }
        if let d = maxDepth, d < 1 { return "max depth must be at least 1" }
        if minSamplesLeaf < 1 { return "min samples per leaf must be at least 1" }
        return nil
    }
}

/// Breiman's random forest for regression with scikit-learn's defaults: each
/// tree is fitted to a bootstrap sample (n draws with replacement) using all
/// features at every split; the prediction is the mean over trees. Tree `i`
/// draws from its own seeded stream, so the forest is the same for a seed
/// however many threads fit it.
public struct RandomForest: Sendable, Equatable {
    public var options: RandomForestOptions
    public var trees: [RegressionTree]

    public init(options: RandomForestOptions, trees: [RegressionTree]) {
        self.options = options
        self.trees = trees
    }

    public static func fit(_ x: FeatureMatrix, _ y: [Double], options: RandomForestOptions, seed: UInt64) -> RandomForest {
        precondition(x.rows == y.count && x.rows > 0, "one target per row, at least one row")
        precondition(options.problem == nil, options.problem ?? "")
        let data = BinnedFeatures(x)
        let n = x.rows
        let limits = TreeLimits(maxDepth: options.maxDepth, minSamplesLeaf: options.minSamplesLeaf)
        let trees = parallelMap(count: options.trees) { i -> RegressionTree in
            var random = SeededRandom.stream(seed: seed, index: UInt64(i))
            let rows = (0..<n).map { _ in Int32(random.next() % UInt64(n)) }
            return TreeBuilder.fit(data: data, target: y, rows: rows, limits: limits).tree
        }
        return RandomForest(options: options, trees: trees)
    }

    /// The mean of the trees' predictions for one sample.
    public func predict(_ x: UnsafeBufferPointer<Double>) -> Double {
        var s = 0.0
        for t in trees { s += t.predict(x) }
        return s * (1 / Double(trees.count))
    }
}
