import Supernet

/// A search strategy, driven by `EvolutionarySearch`: it proposes a batch of
/// archs (a generation), then observes their results. It must be a pure
/// function of its seed and the results it observes, so a search replayed
/// from a saved state makes the same proposals. It does not see the budget:
/// the search cuts a proposal where the budget ends, so a finished search
/// resumed with a larger budget continues exactly as one run would have.
public protocol SearchAlgorithm {
    /// The next archs to evaluate, in order; empty when it has nothing more
    /// to try. Archs already evaluated cost nothing (answered from a cache).
    mutating func propose() -> [Arch]
    /// Results of the last proposal in its order: archs cut by the budget are
    /// missing, and archs proposed twice appear twice.
    mutating func observe(_ results: [EvaluatedArch])
}

/// The algorithms `--algorithm` names.
public enum SearchAlgorithmKind: String, CaseIterable, Sendable {
    /// Ours: front-local variation screened by a surrogate (`FrontSearch`).
    case front
    /// The official AlphaNet search (`OfficialSearch`).
    case official
}

/// Settings of a search that a saved state must share with its resumption.
public struct SearchSettings: Sendable, Equatable {
    public var algorithm: SearchAlgorithmKind
    public var seed: UInt64
    public var bounds: FlopsBounds
    /// Official: initial population, mutants and crossovers per generation,
    /// per-gene mutation probability and FLOPs bucket width.
    public var population: Int
    public var mutate: Int
    public var crossover: Int
    public var mutateProb: Double
    public var step: Double
    /// The cost axis (bounds and front): FLOPs, or a latency table's prediction.
    public var objective = SearchObjective.flops

    public init(algorithm: SearchAlgorithmKind, seed: UInt64, bounds: FlopsBounds, population: Int = 512,
                mutate: Int = 128, crossover: Int = 128, mutateProb: Double = 0.2, step: Double = 10) {
        self.algorithm = algorithm
        self.seed = seed
        self.bounds = bounds
        self.population = population
        self.mutate = mutate
        self.crossover = crossover
        self.mutateProb = mutateProb
        self.step = step
    }

    /// The algorithm these settings name, for `space`.
    public func makeAlgorithm(space: SearchSpace) -> any SearchAlgorithm {
        switch algorithm {
        case .official:
            return OfficialSearch(space: space, settings: self)
        case .front:
            return FrontSearch(space: space, bounds: bounds, seed: seed, objective: objective)
        }
    }
}
