import NASCore

/// How well two measurements of the same archs agree on their order (e.g. supernet vs
/// stand-alone accuracy): Kendall's tau-b and Spearman's rho (`RankMetrics`, ties as
/// scipy), and the top-k overlap, each with a bootstrap 95% interval.
///
/// The top-k overlap is |top k by x ∩ top k by y| / k, "top" meaning the largest values
/// (ties broken by input order). The intervals are percentile intervals (2.5% and 97.5%,
/// linearly interpolated as numpy.percentile) of the statistic over `resamples` resamples of
/// the pairs with replacement, from a seeded stream; resamples on which a statistic is
/// undefined (one side constant) are left out of its interval.
public struct RankCorrelation: Sendable, Equatable {
    public struct Estimate: Sendable, Equatable {
        public var value: Double
        public var low: Double
        public var high: Double
    }

    public var count: Int
    public var topK: Int
    public var resamples: Int
    public var kendallTau: Estimate
    public var spearmanRho: Estimate
    public var topKOverlap: Estimate

    /// - Precondition: x and y have the same length >= 2; 1 <= topK <= count.
    public init(_ x: [Double], _ y: [Double], topK: Int, resamples: Int = 1000, seed: UInt64 = 0) {
        precondition(x.count == y.count && x.count >= 2, "RankCorrelation: two arrays of the same length >= 2")
        precondition((1...x.count).contains(topK), "RankCorrelation: top-k \(topK) outside 1...\(x.count)")
        count = x.count
        self.topK = topK
        self.resamples = resamples
        var taus: [Double] = [], rhos: [Double] = [], overlaps: [Double] = []
        var rng = SeededRandom(seed: seed)
        let n = x.count
        for _ in 0..<resamples {
            let pick = (0..<n).map { _ in Int(rng.next() % UInt64(n)) }
            let bx = pick.map { x[$0] }, by = pick.map { y[$0] }
            let t = RankMetrics.kendallTau(bx, by), r = RankMetrics.spearmanRho(bx, by)
            if t.isFinite { taus.append(t) }
            if r.isFinite { rhos.append(r) }
            overlaps.append(Self.overlap(bx, by, k: topK))
        }
        func estimate(_ value: Double, _ samples: [Double]) -> Estimate {
            Estimate(value: value, low: Self.percentile(samples, 0.025), high: Self.percentile(samples, 0.975))
        }
        kendallTau = estimate(RankMetrics.kendallTau(x, y), taus)
        spearmanRho = estimate(RankMetrics.spearmanRho(x, y), rhos)
        topKOverlap = estimate(Self.overlap(x, y, k: topK), overlaps)
    }

    /// |top k of x ∩ top k of y| / k over positions, largest first, ties by position.
    public static func overlap(_ x: [Double], _ y: [Double], k: Int) -> Double {
        func top(_ v: [Double]) -> Set<Int> {
            Set(v.indices.sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }.prefix(k))
        }
        return Double(top(x).intersection(top(y)).count) / Double(k)
    }

    /// The q-quantile with linear interpolation between order statistics (NaN when empty).
    public static func percentile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted()
        let pos = q * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }
}
