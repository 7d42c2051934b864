import NASCore
import Supernet

/// Samples archs of a space as the official AttentiveNAS sampler does:
/// every choice (resolution, each width, depth, kernel size and expand ratio)
/// drawn uniformly and independently from its list.
public struct ArchSampler: Sendable {
    public let space: SearchSpace
    public var random: SeededRandom

    public init(space: SearchSpace, seed: UInt64) {
        self.space = space
        random = SeededRandom(seed: seed)
    }

    mutating func pick(_ choices: [Int]) -> Int {
        choices[Int(random.next() % UInt64(choices.count))]
    }

    /// One uniformly sampled arch.
    public mutating func uniform() -> Arch {
        Arch(resolution: pick(space.resolutions),
             width: space.widthChoices.map { pick($0) },
             depth: space.depthChoices.map { pick($0) },
             kernelSize: space.kernelChoices.map { pick($0) },
             expandRatio: space.expandChoices.map { pick($0) })
    }

    /// A uniform arch with `lo <= flops <= hi`, by rejection as the official
    /// `sample_active_subnet_within_range`, but giving up after `maxTries`
    /// draws instead of looping forever. Nil when no draw met the bounds.
    public mutating func uniform(flopsMin lo: Double, flopsMax hi: Double, maxTries: Int = 100_000) -> (arch: Arch, flops: Double)? {
        for _ in 0..<maxTries {
            let a = uniform()
            let f = a.flops(in: space)
            if f >= lo && f <= hi { return (a, f) }
        }
        return nil
    }
}
