import NASCore
import Supernet

/// Our search (`--algorithm front`, the default): it optimises the
/// FLOPs-vs-acc1 front directly, spending evaluations where they are most
/// likely to raise its hypervolume.
///
/// - Generation 0: the min subnet plus archs spread evenly over the FLOPs
///   range (one per FLOPs bin, drawn from "level" samples in which every gene
///   sits near a common quantile of its choices), so the ends of the range,
///   which uniform sampling rarely reaches, are covered from the start.
/// - Each next generation: many candidate children of front archs (parents
///   chosen by a uniform FLOPs target, so wide gaps of the front get more
///   children): steps of a few genes to neighbour values, crossovers of
///   front neighbours (similar FLOPs), and a few official-style mutations.
///   Children outside the bounds or seen before are discarded.
/// - An additive surrogate (`AdditiveSurrogate`), refitted to every result,
///   predicts each candidate's acc1; most of the batch is chosen greedily by
///   predicted hypervolume gain over the front (each pick added to the front
///   as predicted, so picks spread out), the rest uniformly for exploration.
///
/// Never proposes an arch twice. Deterministic for a seed and the results.
public struct FrontSearch: SearchAlgorithm {
    public let space: SearchSpace
    public let bounds: FlopsBounds
    /// The cost the bounds and the front are in.
    public let objective: SearchObjective
    public let layout: GeneLayout
    /// Archs in generation 0.
    public var initialSize: Int
    /// Archs per later generation.
    public var batchSize = 32
    /// Candidates generated per arch of a batch.
    public var candidatesPerPick = 60
    /// Share of a batch chosen by the surrogate (the rest: uniformly).
    public var surrogateShare = 0.75
    private var random: SeededRandom
    private var generation = 0
    private var evaluated: [EvaluatedArch] = []
    private var seen = Set<Arch>()
    private var surrogate: AdditiveSurrogate

    public init(space: SearchSpace, bounds: FlopsBounds, seed: UInt64, objective: SearchObjective = .flops) {
        self.space = space
        self.bounds = bounds
        self.objective = objective
        layout = GeneLayout(space: space)
        random = SeededRandom(seed: seed)
        surrogate = AdditiveSurrogate(layout: layout)
        initialSize = 96
    }

    public mutating func propose() -> [Arch] {
        defer { generation += 1 }
        let batch = generation == 0 ? initialPopulation() : nextBatch(size: batchSize)
        for a in batch { seen.insert(a) }
        return batch
    }

    public mutating func observe(_ results: [EvaluatedArch]) {
        evaluated += results
        surrogate.fit(evaluated.map { (layout.genes($0.arch), $0.acc1) })
    }

    // MARK: Generation 0

    /// An arch whose genes sit near quantile `level` of their sorted choices.
    private mutating func levelSample(_ level: Double) -> Arch {
        let g = layout.sortedChoices.map { c -> Int in
            let v = level + 0.6 * (random.uniform() - 0.5)
            return c[min(c.count - 1, max(0, Int(v * Double(c.count))))]
        }
        return layout.arch(g)
    }

    private mutating func initialPopulation() -> [Arch] {
        var out: [Arch] = []
        let minArch = space.minArch
        if bounds.contains(objective.cost(minArch, in: space)) { out.append(minArch) }
        let bins = max(1, initialSize - out.count)
        var filled = [Arch?](repeating: nil, count: bins)
        var spare: [Arch] = []
        var taken = Set(out)
        let width = (bounds.max - bounds.min) / Double(bins)
        for _ in 0..<(bins * 40) {
            let a = levelSample(random.uniform() * 1.2 - 0.1)
            let f = objective.cost(a, in: space)
            guard bounds.contains(f), !taken.contains(a) else { continue }
            let bin = min(bins - 1, width > 0 ? Int((f - bounds.min) / width) : 0)
            if filled[bin] == nil {
                filled[bin] = a
                taken.insert(a)
            } else if spare.count < bins {
                spare.append(a)
            }
        }
        // Empty bins (FLOPs no sample reached) give their place to spares.
        for a in filled.compactMap({ $0 }) { out.append(a) }
        for a in spare where out.count < initialSize && taken.insert(a).inserted { out.append(a) }
        return out
    }

    // MARK: Later generations

    /// The front of the archs evaluated within the bounds.
    private var front: [EvaluatedArch] {
        ParetoFront.extract(evaluated.filter { bounds.contains($0.cost) })
    }

    private mutating func nextBatch(size: Int) -> [Arch] {
        let front = self.front
        guard !front.isEmpty, size > 0 else { return [] }
        var candidates: [(arch: Arch, genes: [Int], flops: Double)] = []
        var inPool = Set<Arch>()
        let wanted = size * candidatesPerPick
        var tries = 0
        while candidates.count < wanted && tries < wanted * 20 {
            tries += 1
            let child = makeChild(front: front)
            guard !seen.contains(child), inPool.insert(child).inserted else { continue }
            let f = objective.cost(child, in: space)
            guard bounds.contains(f) else { continue }
            candidates.append((child, layout.genes(child), f))
        }
        guard !candidates.isEmpty else { return [] }

        let predicted = candidates.map { surrogate.predict($0.genes) }
        let floor = (evaluated.map(\.acc1).min() ?? 0) - 1
        var virtual = front.map { (flops: $0.cost, acc: $0.acc1) }
        var chosen: [Int] = []
        var taken = [Bool](repeating: false, count: candidates.count)
        let bySurrogate = min(candidates.count, Int((Double(size) * surrogateShare).rounded()))
        for _ in 0..<bySurrogate {
            var best = -1, bestGain = 0.0
            for (i, c) in candidates.enumerated() where !taken[i] {
                let g = Self.gain(flops: c.flops, acc: predicted[i], front: virtual, floor: floor, limit: bounds.max)
                if g > bestGain { bestGain = g; best = i }
            }
            guard best >= 0 else { break }
            taken[best] = true
            chosen.append(best)
            virtual = ParetoFront.extract(virtual + [(candidates[best].flops, predicted[best])], flops: \.flops, accuracy: \.acc)
        }
        var rest = candidates.indices.filter { !taken[$0] }
        while chosen.count < size && !rest.isEmpty {
            let k = random.index(rest.count)
            chosen.append(rest[k])
            rest.swapAt(k, rest.count - 1)
            rest.removeLast()
        }
        return chosen.map { candidates[$0].arch }
    }

    /// A child of front archs.
    private mutating func makeChild(front: [EvaluatedArch]) -> Arch {
        // Parent: the front arch in force at a uniform cost target.
        let target = bounds.min + random.uniform() * (bounds.max - bounds.min)
        let p = max(0, (front.lastIndex { $0.cost <= target }) ?? 0)
        let parent = front[p].arch
        let r = random.uniform()
        if r < 0.55 {
            var moves = 1
            while moves < 4 && random.uniform() < 0.4 { moves += 1 }
            return LocalVariation.step(parent, moves: moves, layout: layout, random: &random)
        } else if r < 0.85 {
            let lo = max(0, p - 3), hi = min(front.count - 1, p + 3)
            let q = lo + random.index(hi - lo + 1)
            return OfficialVariation.crossover(parent, front[q].arch, layout: layout, random: &random)
        } else {
            return OfficialVariation.mutate(parent, prob: 0.1, layout: layout, random: &random)
        }
    }

    /// The hypervolume (in MFLOPs x acc1 units, above `floor`, FLOPs up to
    /// `limit`) that a point (flops, acc) would add to `front` (sorted by
    /// FLOPs, accuracy increasing).
    static func gain(flops: Double, acc: Double, front: [(flops: Double, acc: Double)], floor: Double, limit: Double) -> Double {
        guard flops <= limit, acc > floor else { return 0 }
        // The level in force at `flops`: the last front point at or below it.
        var j = -1
        var lo = 0, hi = front.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if front[mid].flops <= flops { lo = mid + 1 } else { hi = mid }
        }
        j = lo - 1
        var level = j >= 0 ? front[j].acc : floor
        guard acc > level else { return 0 }
        var x = flops, total = 0.0
        var k = j + 1
        while k < front.count {
            total += (front[k].flops - x) * (acc - level)
            x = front[k].flops
            level = front[k].acc
            if level >= acc { return total }
            k += 1
        }
        return total + (limit - x) * (acc - level)
    }
}
