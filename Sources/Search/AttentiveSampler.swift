import NASCore
import Supernet

/// The AttentiveNAS sampler (sampler/attentive_nas_sampler.py): a table of
/// uniformly sampled archs, bucketed by FLOPs rounded to `step`, gives the
/// FLOPs distribution of the space and, per bucket, the frequency of every
/// choice at every position. Sampling draws a bucket by its frequency, then
/// each choice from that bucket's frequencies, until an arch lands in the
/// bucket (at most `maxTrials` + 1 draws; the last is accepted anyway).
///
/// The official table is a file of archs measured once; here it is built
/// from `tableSize` uniform samples with a fixed seed, which is the same
/// distribution.
public struct AttentiveSampler: Sendable {
    public let space: SearchSpace
    public let step: Double
    /// Buckets (rounded FLOPs) with their probability, ascending.
    let buckets: [(flops: Int, weight: Double)]
    /// Per bucket, per gene (resolution, 9 widths, 7 kernels, 7 depths, 7 expands), value weights.
    let genes: [Int: [[(value: Int, weight: Double)]]]

    /// `step`: the FLOPs bucket width in MFLOPs (official `discretize_step`); nil: the
    /// default width of `space`, `defaultStep(for:)`.
    public init(space: SearchSpace, step: Double? = nil, tableSize: Int = 10_000, seed: UInt64 = 0) {
        self.space = space
        let s = step ?? AttentiveSampler.defaultStep(for: space)
        precondition(s > 0, "AttentiveSampler: the FLOPs bucket width must be positive")
        self.step = s
        var sampler = ArchSampler(space: space, seed: seed)
        var counts: [Int: Int] = [:]
        var geneCounts: [Int: [[Int: Int]]] = [:]
        for _ in 0..<tableSize {
            let a = sampler.uniform()
            let b = AttentiveSampler.round(a.flops(in: space), s)
            counts[b, default: 0] += 1
            var g = geneCounts[b] ?? Array(repeating: [:], count: 31)
            for (i, v) in AttentiveSampler.genes(of: a).enumerated() { g[i][v, default: 0] += 1 }
            geneCounts[b] = g
        }
        buckets = counts.keys.sorted().map { ($0, Double(counts[$0] ?? 0) / Double(tableSize)) }
        genes = geneCounts.mapValues { $0.map { m in m.keys.sorted().map { ($0, Double(m[$0] ?? 0)) } } }
    }

    /// The official 25 MFLOPs where the space spans at least 40 such buckets (the official
    /// space: about 70), else a 60th of the span (rounded to 0.1 MFLOPs), so a small space
    /// still has buckets to choose between.
    public static func defaultStep(for space: SearchSpace) -> Double {
        let span = space.maxArch.flops(in: space) - space.minArch.flops(in: space)
        return span >= 25 * 40 ? 25 : max(0.1, (span / 60 * 10).rounded() / 10)
    }

    /// The buckets (rounded MFLOPs) and their probabilities, ascending.
    public var table: [(flops: Int, probability: Double)] { buckets.map { ($0.flops, $0.weight) } }

    /// The candidate AttentiveNAS trains of those scored by `losses` (their minibatch
    /// losses): bestup the lowest loss, worstup the highest; on a tie the first, as the
    /// official `max(enumerate(-loss))` / `min(...)`.
    public static func select(losses: [Double], worstUp: Bool) -> Int {
        var best = 0
        for (i, l) in losses.enumerated() where worstUp ? l > losses[best] : l < losses[best] { best = i }
        return best
    }

    static func round(_ flops: Double, _ step: Double) -> Int { Int((flops / step).rounded() * step) }

    /// resolution, width (9), kernel_size (7), depth (7), expand_ratio (7).
    static func genes(of a: Arch) -> [Int] { [a.resolution] + a.width + a.kernelSize + a.depth + a.expandRatio }

    static func choose<G: RandomNumberGenerator>(_ options: [(value: Int, weight: Double)], _ random: inout G) -> Int {
        let total = options.reduce(0) { $0 + $1.weight }
        var u = Double(random.next() >> 11) * 0x1p-53 * total
        for o in options {
            u -= o.weight
            if u < 0 { return o.value }
        }
        return options.last?.value ?? 0
    }

    /// A FLOPs bucket drawn by its frequency.
    public func targetFlops<G: RandomNumberGenerator>(random: inout G) -> Int {
        AttentiveSampler.choose(buckets.map { ($0.flops, $0.weight) }, &random)
    }

    /// `count` archs drawn from `target`'s bucket frequencies.
    public func candidates<G: RandomNumberGenerator>(near target: Int, count: Int, maxTrials: Int = 100, random: inout G) -> [Arch] {
        guard let g = genes[target] else { return [] }
        var out: [Arch] = []
        while out.count < count {
            var arch = space.minArch
            for _ in 0...maxTrials {
                let v = g.map { AttentiveSampler.choose($0, &random) }
                arch = Arch(resolution: v[0], width: Array(v[1..<10]), depth: Array(v[17..<24]),
                            kernelSize: Array(v[10..<17]), expandRatio: Array(v[24..<31]))
                if AttentiveSampler.round(arch.flops(in: space), step) == target { break }
            }
            out.append(arch)
        }
        return out
    }
}
