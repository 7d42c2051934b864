import NASCore
import Search
import Supernet
import Testing

/// The AttentiveNAS sampler: the candidate kept is the best (bestup) or the worst
/// (worstup) of the trials by their losses, FLOPs targets are drawn as often as the
/// table says, candidates land in the target's bucket, and the bucket width is a setting
/// (official 25 MFLOPs).
struct AttentiveSamplerTests {
    let official: SearchSpace
    let tiny: SearchSpace

    init() throws {
        official = try SearchSpace(contentsOf: EvoPaths.space("alphanet"))
        tiny = try SearchSpace(contentsOf: EvoPaths.space("tiny"))
    }

    @Test func bestUpKeepsTheLowestLossAndWorstUpTheHighest() {
        // Stub losses of three trials, as the minibatch losses the trainer computes.
        #expect(AttentiveSampler.select(losses: [2.5, 0.7, 1.9], worstUp: false) == 1)
        #expect(AttentiveSampler.select(losses: [2.5, 0.7, 1.9], worstUp: true) == 0)
        #expect(AttentiveSampler.select(losses: [1.0, 3.0, 2.0, 0.5], worstUp: false) == 3)
        #expect(AttentiveSampler.select(losses: [1.0, 3.0, 2.0, 0.5], worstUp: true) == 1)
        // Ties: the first, as Python's max/min over enumerate in the official code.
        #expect(AttentiveSampler.select(losses: [1.0, 0.5, 0.5], worstUp: false) == 1)
        #expect(AttentiveSampler.select(losses: [2.0, 1.0, 2.0], worstUp: true) == 0)
        #expect(AttentiveSampler.select(losses: [4.2], worstUp: true) == 0)
    }

    @Test func bucketWidthIsTheOfficial25OrASixtiethOfASmallSpace() {
        #expect(AttentiveSampler.defaultStep(for: official) == 25)
        let span = tiny.maxArch.flops(in: tiny) - tiny.minArch.flops(in: tiny)
        #expect(span < 1000)
        #expect(abs(AttentiveSampler.defaultStep(for: tiny) - span / 60) <= 0.05)
        let s = AttentiveSampler(space: official, step: 50, tableSize: 2000, seed: 1)
        #expect(s.step == 50)
        #expect(s.table.allSatisfy { $0.flops % 50 == 0 })
        let d = AttentiveSampler(space: official, tableSize: 2000, seed: 1)
        #expect(d.step == 25 && d.table.allSatisfy { $0.flops % 25 == 0 })
        #expect(d.table.count > s.table.count)
    }

    /// The table is the space's FLOPs distribution (an independent uniform sample agrees
    /// with it), and targets are drawn with the table's frequencies.
    @Test func targetsFollowTheTable() {
        let sampler = AttentiveSampler(space: official, tableSize: 10_000, seed: 3)
        let table = sampler.table
        #expect(abs(table.reduce(0) { $0 + $1.probability } - 1) < 1e-9)
        var uniform = ArchSampler(space: official, seed: 99)
        var fresh: [Int: Int] = [:]
        for _ in 0..<10_000 {
            let f = uniform.uniform().flops(in: official)
            fresh[Int((f / 25).rounded() * 25), default: 0] += 1
        }
        for b in table {
            // Binomial standard deviation of a bucket's frequency in 10,000 draws: <= 0.005.
            #expect(abs(Double(fresh[b.flops] ?? 0) / 10_000 - b.probability) < 0.025, "bucket \(b.flops)")
        }
        var random = SeededRandom(seed: 5)
        var drawn: [Int: Int] = [:]
        let n = 40_000
        for _ in 0..<n { drawn[sampler.targetFlops(random: &random), default: 0] += 1 }
        #expect(Set(drawn.keys).isSubset(of: Set(table.map(\.flops))))
        for b in table {
            #expect(abs(Double(drawn[b.flops] ?? 0) / Double(n) - b.probability) < 0.01, "bucket \(b.flops)")
        }
    }

    @Test func candidatesLandInTheTargetBucket() {
        let sampler = AttentiveSampler(space: official, tableSize: 10_000, seed: 3)
        var random = SeededRandom(seed: 8)
        var inBucket = 0, total = 0
        for _ in 0..<40 {
            let target = sampler.targetFlops(random: &random)
            let candidates = sampler.candidates(near: target, count: 3, random: &random)
            #expect(candidates.count == 3)
            for c in candidates {
                total += 1
                if Int((c.flops(in: official) / 25).rounded() * 25) == target { inBucket += 1 }
                #expect((try? c.validate(in: official)) != nil)
            }
        }
        #expect(Double(inBucket) / Double(total) > 0.9, "\(inBucket) of \(total) in their bucket")
    }
}
