/// Features quantised to at most 256 bins per column, for histogram-based
/// tree fitting. Column `c` has `thresholds[c].count + 1` bins: a value `x`
/// falls in bin `b` = the number of thresholds below `x`, so
/// `bin <= b` exactly when `x <= thresholds[c][b]`, and a tree split on bin `b`
/// is the split `x <= thresholds[c][b]` on raw values.
///
/// A column with at most `maxBins` distinct values gets one bin per value and
/// thresholds half-way between neighbours (as scikit-learn's exact splitter
/// places them), so trees on the official arch encoding (2 to 8 choices per
/// column) see every possible split. A column with more distinct values is cut
/// at quantiles of its values instead.
public struct BinnedFeatures: Sendable {
    public let rows: Int
    public let columns: Int
    /// Column-major bin indices: row `r` of column `c` at `bins[c * rows + r]`.
    public let bins: [UInt8]
    public let thresholds: [[Double]]

    public init(_ x: FeatureMatrix, maxBins: Int = 256) {
        precondition(maxBins >= 2 && maxBins <= 256, "maxBins must be in 2...256")
        rows = x.rows
        columns = x.columns
        var thresholds: [[Double]] = []
        var bins = [UInt8](repeating: 0, count: x.rows * x.columns)
        for c in 0..<x.columns {
            let column = (0..<x.rows).map { x[$0, c] }
            let t = BinnedFeatures.thresholds(for: column, maxBins: maxBins)
            for r in 0..<x.rows { bins[c * x.rows + r] = UInt8(BinnedFeatures.bin(of: column[r], thresholds: t)) }
            thresholds.append(t)
        }
        self.bins = bins
        self.thresholds = thresholds
    }

    /// Number of bins of column `c`.
    public func binCount(_ c: Int) -> Int { thresholds[c].count + 1 }

    /// Split points for one column: midpoints between consecutive distinct
    /// values, at most `maxBins - 1` of them (quantiles when there are more).
    static func thresholds(for column: [Double], maxBins: Int) -> [Double] {
        let sorted = column.sorted()
        var distinct: [Double] = []
        for v in sorted where distinct.last != v { distinct.append(v) }
        if distinct.count <= maxBins {
            return zip(distinct, distinct.dropFirst()).map { midpoint($0, $1) }
        }
        // Quantile cuts: after the value at each quantile, before the next distinct value.
        var out: [Double] = []
        for q in 1..<maxBins {
            let v = sorted[q * sorted.count / maxBins]
            guard let next = sorted.first(where: { $0 > v }) else { break }  // O(n) but only for wide columns
            let t = midpoint(v, next)
            if out.last.map({ t > $0 }) ?? true { out.append(t) }
        }
        return out
    }

    /// Half-way between a < b, never equal to b (so b stays right of the split).
    static func midpoint(_ a: Double, _ b: Double) -> Double {
        let m = a + (b - a) / 2
        return m < b ? m : a
    }

    /// The number of thresholds strictly below `x` (binary search).
    static func bin(of x: Double, thresholds t: [Double]) -> Int {
        var lo = 0, hi = t.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if t[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
