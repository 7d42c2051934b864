import NASCore
import Search
import Testing

/// Random (flops, acc) points with ties: values on a coarse grid.
func randomPoints(seed: UInt64, count: Int) -> [(flops: Double, acc: Double)] {
    var r = SeededRandom(seed: seed)
    return (0..<count).map { _ in
        (flops: 150 + Double(r.next() % 120) * 10, acc: 66 + Double(r.next() % 80) * 0.1)
    }
}

@Suite struct EvoParetoTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func frontMatchesNaiveDefinition(seed: UInt64) {
        let pts = randomPoints(seed: seed, count: 200)
        let front = ParetoFront.extract(pts, flops: \.flops, accuracy: \.acc)
        // Naive: p is kept iff no q dominates it; of equal pairs, the first.
        var naive: [(flops: Double, acc: Double)] = []
        for (i, p) in pts.enumerated() {
            let dominated = pts.contains { q in
                q.flops <= p.flops && q.acc >= p.acc && (q.flops < p.flops || q.acc > p.acc)
            }
            let earlierTwin = pts[..<i].contains { $0.flops == p.flops && $0.acc == p.acc }
            if !dominated && !earlierTwin { naive.append(p) }
        }
        naive.sort { $0.flops < $1.flops }
        #expect(front.count == naive.count)
        for (a, b) in zip(front, naive) {
            #expect(a.flops == b.flops && a.acc == b.acc)
        }
        for (a, b) in zip(front, front.dropFirst()) {
            #expect(a.flops < b.flops && a.acc < b.acc)
        }
    }

    /// `spread` keeps both ends and, for each evenly spaced cost target, the point a
    /// brute-force nearest search picks (of two equally near, the costlier), in front order.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func spreadPicksTheNearestPointToEvenlySpacedCosts(seed: UInt64) {
        // A front of 40 points at irregular costs (accuracy rising with cost).
        var r = SeededRandom(seed: seed)
        let costs = Set((0..<40).map { _ in 150 + Double(r.next() % 1000) }).sorted()
        let front = costs.enumerated().map { (flops: $1, acc: 60 + Double($0) * 0.1) }
        #expect(front.count > 12)
        for count in [1, 2, 5, 12] {
            let kept = ParetoFront.spread(front, count: count, cost: \.flops)
            let lo = front[0].flops, hi = front[front.count - 1].flops
            var naive = Set<Int>()
            for i in 0..<count {
                let t = count == 1 ? lo : lo + (hi - lo) * Double(i) / Double(count - 1)
                let best = front.indices.min { a, b in
                    let da = abs(front[a].flops - t), db = abs(front[b].flops - t)
                    return da != db ? da < db : a > b  // equal distance: the later (farther right) point, as the sweep
                }!
                naive.insert(best)
            }
            #expect(kept.map(\.flops) == naive.sorted().map { front[$0].flops }, "count \(count)")
            #expect(kept.count <= count && kept.first?.flops == lo && (count == 1 || kept.last?.flops == hi))
        }
        #expect(ParetoFront.spread(front, count: front.count, cost: \.flops).map(\.flops) == front.map(\.flops))
    }

    @Test func frontOfNothingIsEmpty() {
        let none: [(flops: Double, acc: Double)] = []
        #expect(ParetoFront.extract(none, flops: \.flops, accuracy: \.acc).isEmpty)
        #expect(ParetoFront.hypervolume(none, flops: \.flops, accuracy: \.acc, bounds: FlopsBounds(min: 200, max: 1200), accuracyFloor: 70) == 0)
    }

    /// HV70 as an integral: over x in [0, 1), the best acc1 - 70 of the points
    /// at or below x (clamped at 0), exact on the segments between points.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func hypervolumeMatchesNaiveIntegral(seed: UInt64) {
        let pts = randomPoints(seed: seed, count: 120)
        let bounds = FlopsBounds(min: 200, max: 1200)
        let xs = pts.filter { $0.flops <= 1200 }.map { max(0, ($0.flops - 200) / 1000) }
        let breaks = Array(Set(xs + [0, 1])).sorted()
        var naive = 0.0
        for (a, b) in zip(breaks, breaks.dropFirst()) {
            let best = pts.filter { $0.flops <= 1200 && max(0, ($0.flops - 200) / 1000) <= a }.map(\.acc).max() ?? 70
            naive += (b - a) * max(0, best - 70)
        }
        let hv = ParetoFront.hypervolume(pts, flops: \.flops, accuracy: \.acc, bounds: bounds, accuracyFloor: 70)
        #expect(abs(hv - naive) <= 1e-9 * max(1, naive), "HV \(hv), naive \(naive)")
    }

    /// The worked definition on a hand-made front.
    @Test func hypervolumeByHand() {
        let front: [(flops: Double, acc: Double)] = [(200, 69), (400, 71), (700, 72), (1300, 80)]
        // (400, 71): x 0.2 to 0.5, height 1; (700, 72): x 0.5 to 1, height 2; the
        // 69 is below the floor and the 1300 outside the bounds.
        let hv = ParetoFront.hypervolume(front, flops: \.flops, accuracy: \.acc, bounds: FlopsBounds(min: 200, max: 1200), accuracyFloor: 70)
        #expect(abs(hv - (0.3 * 1 + 0.5 * 2)) < 1e-12)
    }
}
