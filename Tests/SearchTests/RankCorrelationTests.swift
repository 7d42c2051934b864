import Search
import Testing

@Suite("Rank correlation")
struct RankCorrelationTests {
    @Test func reversedAndIdenticalOrders() {
        let x: [Double] = [1, 2, 3, 4, 5, 6, 7, 8]
        let rev = RankCorrelation(x, x.reversed(), topK: 2, resamples: 200, seed: 1)
        #expect(rev.kendallTau.value == -1 && rev.spearmanRho.value == -1 && rev.topKOverlap.value == 0)
        // Every resample of a reversed list is reversed too (ties in both sides drop out of tau-b).
        #expect(rev.kendallTau.low == -1 && rev.kendallTau.high == -1)
        let same = RankCorrelation(x, x.map { 10 * $0 + 3 }, topK: 3, resamples: 200, seed: 1)
        #expect(same.kendallTau.value == 1 && same.spearmanRho.value == 1 && same.topKOverlap.value == 1)
        #expect(same.topKOverlap.low == 1 && same.spearmanRho.low == 1)
    }

    /// scipy.stats.kendalltau / spearmanr on a list with ties (values from scipy 1.17).
    @Test func tiesAsScipy() {
        let a: [Double] = [12, 2, 1, 12, 2], b: [Double] = [1, 4, 7, 1, 0]
        let c = RankCorrelation(a, b, topK: 2, resamples: 0)
        #expect(abs(c.kendallTau.value - -0.4714045207910316) < 1e-12)
        #expect(abs(c.spearmanRho.value - -0.5407380704358752) < 1e-12)
    }

    @Test func topKOverlapAndPercentiles() {
        // Top 3 of x: positions 4, 3, 2; of y: 4, 0, 2 -> 2 shared.
        #expect(RankCorrelation.overlap([1, 2, 3, 4, 5], [9, 1, 5, 2, 10], k: 3) == 2.0 / 3)
        // Ties by position: all equal -> the first k in both.
        #expect(RankCorrelation.overlap([1, 1, 1, 1], [2, 2, 2, 2], k: 2) == 1)
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925].
        #expect(abs(RankCorrelation.percentile([4, 1, 3, 2], 0.025) - 1.075) < 1e-12)
        #expect(abs(RankCorrelation.percentile([4, 1, 3, 2], 0.975) - 3.925) < 1e-12)
        #expect(RankCorrelation.percentile([], 0.5).isNaN)
    }

    /// Noisy agreement: the interval holds the estimate, is seeded, and narrows with more archs.
    @Test func bootstrapIntervalsAreSeededAndShrink() {
        var r = SeedLCG(state: 5)
        func noisy(_ n: Int) -> ([Double], [Double]) {
            let x = (0..<n).map { _ in r.uniform() }
            return (x, x.map { $0 + 0.3 * r.uniform() })
        }
        let (x, y) = noisy(40)
        let a = RankCorrelation(x, y, topK: 10, resamples: 500, seed: 3), b = RankCorrelation(x, y, topK: 10, resamples: 500, seed: 3)
        #expect(a == b)
        #expect(a.kendallTau.low <= a.kendallTau.value && a.kendallTau.value <= a.kendallTau.high && a.kendallTau.low < a.kendallTau.high)
        let (x2, y2) = noisy(200)
        let wide = RankCorrelation(x2, y2, topK: 50, resamples: 300, seed: 3)
        #expect(wide.kendallTau.high - wide.kendallTau.low < a.kendallTau.high - a.kendallTau.low)
    }
}

/// A tiny deterministic generator for test data.
struct SeedLCG {
    var state: UInt64
    mutating func uniform() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) * 0x1p-53
    }
}
