/// How well predictions rank and fit the truth: Kendall's tau-b, Spearman's
/// rho and the root-mean-square error. All three take the predictions and
/// the true values as two arrays of the same length.
public enum RankMetrics {
    /// Kendall's tau-b with ties:
    /// `(C - D) / sqrt((n0 - n1) * (n0 - n2))`, where C and D count concordant and
    /// discordant pairs, `n0 = n(n-1)/2`, `n1` counts pairs tied in `a` and `n2`
    /// pairs tied in `b` (a pair tied in both counts in both). Computed with
    /// Knight's O(n log n) algorithm (sort by `a` then `b`, count exchanges of a
    /// merge sort on `b`). Values compare with `==`, so only exact ties count.
    /// NaN when either side is constant or there are fewer than two values.
    public static func kendallTau(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "kendallTau needs two arrays of the same length")
        let n = a.count
        guard n >= 2 else { return .nan }
        let order = (0..<n).sorted { a[$0] != a[$1] ? a[$0] < a[$1] : b[$0] < b[$1] }
        var ys = order.map { b[$0] }
        let xs = order.map { a[$0] }
        // Pairs tied in a (n1) and tied in both (n3): runs of equal a, and of equal (a, b).
        var tiedA = 0, tiedBoth = 0
        var i = 0
        while i < n {
            var j = i + 1
            while j < n && xs[j] == xs[i] { j += 1 }
            tiedA += (j - i) * (j - i - 1) / 2
            var k = i
            while k < j {
                var m = k + 1
                while m < j && ys[m] == ys[k] { m += 1 }
                tiedBoth += (m - k) * (m - k - 1) / 2
                k = m
            }
            i = j
        }
        // Discordant pairs are the exchanges a stable merge sort of ys makes.
        let swaps = mergeSortCountingExchanges(&ys)
        var tiedB = 0
        i = 0
        while i < n {
            var j = i + 1
            while j < n && ys[j] == ys[i] { j += 1 }
            tiedB += (j - i) * (j - i - 1) / 2
            i = j
        }
        let n0 = n * (n - 1) / 2
        // C - D = n0 - n1 - n2 + n3 - 2 D
        let numerator = Double(n0 - tiedA - tiedB + tiedBoth - 2 * swaps)
        let denominator = (Double(n0 - tiedA) * Double(n0 - tiedB)).squareRoot()
        return denominator > 0 ? numerator / denominator : .nan
    }

    /// Sorts `v` ascending (stably) and returns the number of pairs `i < j`
    /// with `v[i] > v[j]` before sorting (equal values are not inversions).
    static func mergeSortCountingExchanges(_ v: inout [Double]) -> Int {
        let n = v.count
        guard n > 1 else { return 0 }
        var buffer = v
        var exchanges = 0
        var width = 1
        while width < n {
            var lo = 0
            while lo < n {
                let mid = min(lo + width, n), hi = min(lo + 2 * width, n)
                var i = lo, j = mid, k = lo
                while i < mid && j < hi {
                    if v[j] < v[i] {
                        buffer[k] = v[j]; j += 1
                        exchanges += mid - i
                    } else {
                        buffer[k] = v[i]; i += 1
                    }
                    k += 1
                }
                while i < mid { buffer[k] = v[i]; i += 1; k += 1 }
                while j < hi { buffer[k] = v[j]; j += 1; k += 1 }
                lo = hi
            }
            swap(&v, &buffer)
            width *= 2
        }
        return exchanges
    }

    /// Ranks 1...n, ties sharing the average of the ranks they span
    /// (`[10, 20, 20, 30]` gives `[1, 2.5, 2.5, 4]`).
    public static func averageRanks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var ranks = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i + 1
            while j < order.count && v[order[j]] == v[order[i]] { j += 1 }
            let rank = Double(i + j + 1) / 2  // mean of (i+1)...j
            for k in i..<j { ranks[order[k]] = rank }
            i = j
        }
        return ranks
    }

    /// Spearman's rho: Pearson's correlation of the average ranks of `a` and
    /// `b` (so ties are handled as scipy.stats.spearmanr does). NaN when either
    /// side is constant or there are fewer than two values.
    public static func spearmanRho(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "spearmanRho needs two arrays of the same length")
        guard a.count >= 2 else { return .nan }
        return pearson(averageRanks(a), averageRanks(b))
    }

    /// Pearson's correlation `cov(a, b) / (sd(a) sd(b))`; NaN when either is constant.
    public static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "pearson needs two arrays of the same length")
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            sab += (x - ma) * (y - mb)
            saa += (x - ma) * (x - ma)
            sbb += (y - mb) * (y - mb)
        }
        let d = (saa * sbb).squareRoot()
        return d > 0 ? sab / d : .nan
    }

    /// Root-mean-square error `sqrt(mean((prediction - truth)^2))`.
    public static func rmse(_ prediction: [Double], _ truth: [Double]) -> Double {
        precondition(prediction.count == truth.count, "rmse needs two arrays of the same length")
        guard !truth.isEmpty else { return .nan }
        var s = 0.0
        for (p, t) in zip(prediction, truth) { s += (p - t) * (p - t) }
        return (s / Double(truth.count)).squareRoot()
    }
}
