import NASCore
import Testing
@testable import Search

/// Naive O(n^2) Kendall tau-b straight from the definition.
func naiveKendallTauB(_ a: [Double], _ b: [Double]) -> Double {
    var concordant = 0, discordant = 0, tiedA = 0, tiedB = 0
    for i in 0..<a.count {
        for j in (i + 1)..<a.count {
            let da = a[i] - a[j], db = b[i] - b[j]
            if da == 0 { tiedA += 1 }
            if db == 0 { tiedB += 1 }
            if da != 0 && db != 0 {
                if (da > 0) == (db > 0) { concordant += 1 } else { discordant += 1 }
            }
        }
    }
    let n0 = a.count * (a.count - 1) / 2
    return Double(concordant - discordant) / (Double(n0 - tiedA) * Double(n0 - tiedB)).squareRoot()
}

/// Naive average rank: 1 + (number below) + (number equal - 1) / 2.
func naiveAverageRanks(_ v: [Double]) -> [Double] {
    v.map { x in
        let below = v.filter { $0 < x }.count, equal = v.filter { $0 == x }.count
        return 1 + Double(below) + Double(equal - 1) / 2
    }
}

/// Pearson correlation of the naive ranks, by the textbook formula.
func naiveSpearman(_ a: [Double], _ b: [Double]) -> Double {
    let ra = naiveAverageRanks(a), rb = naiveAverageRanks(b)
    let n = Double(a.count)
    let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
    let cov = zip(ra, rb).map { ($0 - ma) * ($1 - mb) }.reduce(0, +)
    let va = ra.map { ($0 - ma) * ($0 - ma) }.reduce(0, +), vb = rb.map { ($0 - mb) * ($0 - mb) }.reduce(0, +)
    return cov / (va * vb).squareRoot()
}

/// Random values on a coarse grid (many ties) with a noisy relation between a and b.
func tiedSample(seed: UInt64, count: Int, levels: Int) -> ([Double], [Double]) {
    var random = SeededRandom(seed: seed)
    var a: [Double] = [], b: [Double] = []
    for _ in 0..<count {
        let x = Double(random.next() % UInt64(levels))
        a.append(x)
        b.append((x + Double(random.next() % UInt64(levels))).rounded(.down))
    }
    return (a, b)
}

func relativelyClose(_ x: Double, _ y: Double, _ tolerance: Double = 1e-12) -> Bool {
    abs(x - y) <= tolerance * max(1, abs(x), abs(y))
}

@Suite struct PredictorMetricsTests {
    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func kendallMatchesNaiveDefinition(seed: UInt64) {
        for (count, levels) in [(2, 2), (7, 3), (60, 4), (300, 50), (301, 100_000)] {
            let (a, b) = tiedSample(seed: seed &+ UInt64(count), count: count, levels: levels)
            let fast = RankMetrics.kendallTau(a, b), naive = naiveKendallTauB(a, b)
            #expect(fast.isNaN == naive.isNaN)
            if !naive.isNaN { #expect(relativelyClose(fast, naive), "n \(count): \(fast) vs \(naive)") }
        }
    }

    @Test func kendallKnownValues() {
        // scipy.stats.kendalltau (tau-b) on the same data.
        let a: [Double] = [1, 2, 2, 3, 4, 4, 4, 5], b: [Double] = [2, 1, 3, 3, 5, 4, 4, 6]
        #expect(relativelyClose(RankMetrics.kendallTau(a, b), 0.8406728074767076))
        #expect(RankMetrics.kendallTau([1, 2, 3], [3, 2, 1]) == -1)
        #expect(RankMetrics.kendallTau([1, 2, 3], [10, 20, 30]) == 1)
        #expect(RankMetrics.kendallTau([1, 1, 1], [1, 2, 3]).isNaN)
        #expect(RankMetrics.kendallTau([1], [1]).isNaN)
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func spearmanMatchesNaiveDefinition(seed: UInt64) {
        for (count, levels) in [(5, 2), (40, 5), (200, 1000)] {
            let (a, b) = tiedSample(seed: seed &+ UInt64(count), count: count, levels: levels)
            #expect(RankMetrics.averageRanks(a) == naiveAverageRanks(a))
            let fast = RankMetrics.spearmanRho(a, b), naive = naiveSpearman(a, b)
            #expect(fast.isNaN == naive.isNaN)
            if !naive.isNaN { #expect(relativelyClose(fast, naive, 1e-10)) }
        }
    }

    @Test func spearmanKnownValues() {
        // scipy.stats.spearmanr on the same data.
        let a: [Double] = [1, 2, 2, 3, 4, 4, 4, 5], b: [Double] = [2, 1, 3, 3, 5, 4, 4, 6]
        #expect(relativelyClose(RankMetrics.spearmanRho(a, b), 0.9256265453136692, 1e-12))
        #expect(RankMetrics.averageRanks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4])
    }

    @Test func rmse() {
        #expect(RankMetrics.rmse([1, 2, 3], [1, 2, 3]) == 0)
        #expect(relativelyClose(RankMetrics.rmse([0, 0], [3, 4]), (12.5 as Double).squareRoot()))
    }
}
