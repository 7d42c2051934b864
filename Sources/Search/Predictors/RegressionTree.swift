/// A binary regression tree in the flat layout scikit-learn exports: node
/// `i` is a leaf when `feature[i] < 0` and then predicts `value[i]`; otherwise
/// a sample goes to `left[i]` when `x[feature[i]] <= threshold[i]` and to
/// `right[i]` otherwise. Node 0 is the root.
public struct RegressionTree: Sendable, Equatable {
    public var feature: [Int32]
    public var threshold: [Double]
    public var left: [Int32]
    public var right: [Int32]
    public var value: [Double]

    public init(feature: [Int32], threshold: [Double], left: [Int32], right: [Int32], value: [Double]) {
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.value = value
    }

    public var nodeCount: Int { feature.count }

    /// Checks the layout: equal lengths, children inside the tree and after
    /// their parent (so every path ends), features below `columns`.
    public func check(columns: Int) -> String? {
        let n = feature.count
        guard n > 0 else { return "a tree has no nodes" }
        guard threshold.count == n, left.count == n, right.count == n, value.count == n else {
            return "a tree's feature, threshold, left, right and value lists differ in length"
        }
        for i in 0..<n {
            guard value[i].isFinite else { return "node \(i) has a non-finite value" }
            if feature[i] < 0 { continue }
            guard Int(feature[i]) < columns else { return "node \(i) splits on feature \(feature[i]) of \(columns)" }
            guard Int(left[i]) > i, Int(left[i]) < n, Int(right[i]) > i, Int(right[i]) < n else {
                return "node \(i) has children outside the tree"
            }
            guard !threshold[i].isNaN else { return "node \(i) has a NaN threshold" }
        }
        return nil
    }

    /// The prediction for one sample (`x` holds its features, `x[0]` first).
    @inline(__always)
    public func predict(_ x: UnsafeBufferPointer<Double>) -> Double {
        var node = 0
        while true {
            let f = Int(feature[node])
            if f < 0 { return value[node] }
            node = Int(x[f] <= threshold[node] ? left[node] : right[node])
        }
    }
}

/// Options of one tree fit: depth and leaf-size limits.
public struct TreeLimits: Sendable, Equatable {
    /// Largest depth (root at depth 0); nil grows until leaves are pure or too small.
    public var maxDepth: Int?
    /// A split must leave at least this many samples on each side.
    public var minSamplesLeaf: Int

    public init(maxDepth: Int?, minSamplesLeaf: Int) {
        precondition(minSamplesLeaf >= 1, "minSamplesLeaf must be at least 1")
        precondition(maxDepth.map { $0 >= 0 } ?? true, "maxDepth must be at least 0")
        self.maxDepth = maxDepth
        self.minSamplesLeaf = minSamplesLeaf
    }
}

/// Least-squares tree fitting on binned features: each node takes the split
/// (feature, bin) that most reduces the squared error
/// `sum_L^2/n_L + sum_R^2/n_R - sum^2/n`, over every feature and bin boundary;
/// leaves predict the mean target of their samples. Ties keep the first
/// feature and bin, so a fit is deterministic. A sample index may appear
/// several times in `rows` (a bootstrap sample); it then counts that often.
struct TreeBuilder {
    let data: BinnedFeatures
    let target: [Double]
    let limits: TreeLimits
    var rows: [Int32]
    var tree = RegressionTree(feature: [], threshold: [], left: [], right: [], value: [])
    /// Bin of each split, to route training rows without raw features.
    var splitBin: [UInt8] = []
    private var histSum = [Double](repeating: 0, count: 256)
    private var histCount = [Int](repeating: 0, count: 256)

    init(data: BinnedFeatures, target: [Double], rows: [Int32], limits: TreeLimits) {
        precondition(target.count == data.rows, "one target per row")
        precondition(!rows.isEmpty, "a tree needs at least one sample")
        self.data = data
        self.target = target
        self.limits = limits
        self.rows = rows
    }

    /// Fits the tree on `rows` and returns it with the bin of every split.
    static func fit(data: BinnedFeatures, target: [Double], rows: [Int32], limits: TreeLimits) -> (tree: RegressionTree, splitBin: [UInt8]) {
        var b = TreeBuilder(data: data, target: target, rows: rows, limits: limits)
        _ = b.grow(lo: 0, hi: rows.count, depth: 0)
        return (b.tree, b.splitBin)
    }

    private mutating func addNode(value: Double) -> Int {
        tree.feature.append(-1)
        tree.threshold.append(0)
        tree.left.append(-1)
        tree.right.append(-1)
        tree.value.append(value)
        splitBin.append(0)
        return tree.feature.count - 1
    }

    /// Grows the subtree of rows[lo..<hi]; returns its node index.
    private mutating func grow(lo: Int, hi: Int, depth: Int) -> Int {
        let n = hi - lo
        var sum = 0.0, sumSq = 0.0
        for i in lo..<hi {
            let t = target[Int(rows[i])]
            sum += t
            sumSq += t * t
        }
        let node = addNode(value: sum / Double(n))
        if let d = limits.maxDepth, depth >= d { return node }
        let minLeaf = limits.minSamplesLeaf
        guard n >= 2 * minLeaf, n >= 2 else { return node }
        let sse = sumSq - sum * sum / Double(n)
        // A (numerically) pure node is a leaf.
        guard sse > 1e-12 * max(sumSq, 1e-300) else { return node }

        var best: (gain: Double, feature: Int, bin: Int)? = nil
        let parentScore = sum * sum / Double(n)
        for c in 0..<data.columns {
            let nb = data.binCount(c)
            if nb < 2 { continue }
            fillHistogram(column: c, bins: nb, lo: lo, hi: hi)
            var sL = 0.0, nL = 0
            for b in 0..<(nb - 1) {
                sL += histSum[b]
                nL += histCount[b]
                if nL < minLeaf { continue }
                let nR = n - nL
                if nR < minLeaf { break }
                if histCount[b] == 0 && b > 0 { continue }  // same partition as the previous bin
                let sR = sum - sL
                let gain = sL * sL / Double(nL) + sR * sR / Double(nR) - parentScore
                if gain > (best?.gain ?? 1e-12 * sse) { best = (gain, c, b) }
            }
        }
        guard let split = best else { return node }

        // Partition rows[lo..<hi]: bin <= split.bin first.
        let base = split.feature * data.rows
        var i = lo, j = hi - 1
        while i <= j {
            if data.bins[base + Int(rows[i])] <= UInt8(split.bin) { i += 1 } else { rows.swapAt(i, j); j -= 1 }
        }
        let mid = i
        assert(mid - lo >= minLeaf && hi - mid >= minLeaf, "split respects minSamplesLeaf")
        tree.feature[node] = Int32(split.feature)
        tree.threshold[node] = data.thresholds[split.feature][split.bin]
        splitBin[node] = UInt8(split.bin)
        let l = grow(lo: lo, hi: mid, depth: depth + 1)
        let r = grow(lo: mid, hi: hi, depth: depth + 1)
        tree.left[node] = Int32(l)
        tree.right[node] = Int32(r)
        return node
    }

    /// Sums and counts of targets per bin of column `c` over rows[lo..<hi].
    private mutating func fillHistogram(column c: Int, bins nb: Int, lo: Int, hi: Int) {
        let base = c * data.rows
        histSum.withUnsafeMutableBufferPointer { hs in
            histCount.withUnsafeMutableBufferPointer { hc in
                for b in 0..<nb { hs[b] = 0; hc[b] = 0 }
                data.bins.withUnsafeBufferPointer { bins in
                    target.withUnsafeBufferPointer { t in
                        rows.withUnsafeBufferPointer { rs in
                            for i in lo..<hi {
                                let r = Int(rs[i])
                                let b = Int(bins[base + r])
                                hs[b] += t[r]
                                hc[b] += 1
                            }
                        }
                    }
                }
            }
        }
    }
}

extension RegressionTree {
    /// The prediction for row `r` of the binned training data, using the
    /// split bins recorded while fitting.
    func predictBinned(_ data: BinnedFeatures, row r: Int, splitBin: [UInt8]) -> Double {
        var node = 0
        while true {
            let f = Int(feature[node])
            if f < 0 { return value[node] }
            node = Int(data.bins[f * data.rows + r] <= splitBin[node] ? left[node] : right[node])
        }
    }
}
