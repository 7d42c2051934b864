import NASCore
import Supernet

/// The official AlphaNet evolutionary search (parallel_supernet_evo_search.py):
///
/// - generation 0: the min subnet, then `population - 1` subnets sampled
///   uniformly within the FLOPs bounds (rejection, as
///   `sample_active_subnet_within_range`);
/// - after each generation, every result updates a "Pareto" table holding the
///   best acc1 per FLOPs bucket, `round(flops / step) * step` (round half to
///   even, as Python), the first seen winning ties; buckets keep the order in
///   which they first appeared (a Python dict);
/// - each next generation: `mutate` children of a uniformly chosen bucket
///   winner (`mutate_and_reset` with `mutateProb`), then `crossover` children
///   of two uniformly chosen winners (`crossover_and_reset`, p = 0.5), each
///   redrawn until its FLOPs fall within the bounds.
///
/// Differences: our random numbers (xoshiro, not Python's), so the same seed
/// does not give the official search's archs; a child that does not meet the
/// bounds in `maxTries` draws is dropped instead of looping forever; archs
/// already evaluated are answered from the search's cache.
public struct OfficialSearch: SearchAlgorithm {
    public let space: SearchSpace
    public let settings: SearchSettings
    public let layout: GeneLayout
    public var maxTries = 10_000
    private var sampler: ArchSampler
    private var generation = 0
    /// Bucket keys in first-seen order, and each bucket's best.
    private(set) var bucketOrder: [Double] = []
    private(set) var buckets: [Double: EvaluatedArch] = [:]

    public init(space: SearchSpace, settings: SearchSettings) {
        self.space = space
        self.settings = settings
        layout = GeneLayout(space: space)
        sampler = ArchSampler(space: space, seed: settings.seed)
    }

    /// The bucket winners, in the table's order.
    public var table: [EvaluatedArch] { bucketOrder.compactMap { buckets[$0] } }

    public mutating func propose() -> [Arch] {
        defer { generation += 1 }
        let lo = settings.bounds.min, hi = settings.bounds.max
        if generation == 0 {
            var out = [space.minArch]
            for _ in 1..<max(1, settings.population) {
                guard let (a, _) = sampler.uniform(flopsMin: lo, flopsMax: hi, maxTries: maxTries) else { break }
                out.append(a)
            }
            return out
        }
        let parents = table
        guard !parents.isEmpty else { return [] }
        var out: [Arch] = []
        for _ in 0..<settings.mutate {
            for _ in 0..<maxTries {
                let p = parents[sampler.random.index(parents.count)].arch
                let c = OfficialVariation.mutate(p, prob: settings.mutateProb, layout: layout, random: &sampler.random)
                if settings.bounds.contains(c.flops(in: space)) { out.append(c); break }
            }
        }
        for _ in 0..<settings.crossover {
            for _ in 0..<maxTries {
                let a = parents[sampler.random.index(parents.count)].arch
                let b = parents[sampler.random.index(parents.count)].arch
                let c = OfficialVariation.crossover(a, b, layout: layout, random: &sampler.random)
                if settings.bounds.contains(c.flops(in: space)) { out.append(c); break }
            }
        }
        return out
    }

    public mutating func observe(_ results: [EvaluatedArch]) {
        for r in results {
            let key = (r.flops / settings.step).rounded(.toNearestOrEven) * settings.step
            if let old = buckets[key] {
                if old.acc1 < r.acc1 { buckets[key] = r }
            } else {
                buckets[key] = r
                bucketOrder.append(key)
            }
        }
    }
}
