import Supernet

/// The cost axis of a search: MFLOPs (the official formula), or the latency a
/// `LatencyTable` predicts in milliseconds (`evo-search --objective latency`). The bounds,
/// the front and its hypervolume are all in this cost.
public enum SearchObjective: Sendable, Equatable {
    case flops
    case latency(LatencyTable)

    public func cost(_ arch: Arch, in space: SearchSpace) -> Double {
        switch self {
        case .flops: arch.flops(in: space)
        case let .latency(table): table.predict(arch, in: space).ms
        }
    }

    /// The key of the cost in result lines (`flops` is always written too).
    public var key: String {
        switch self {
        case .flops: "flops"
        case .latency: "latency_ms_pred"
        }
    }
}

/// The objectives `--objective` names.
public enum SearchObjectiveKind: String, CaseIterable, Sendable {
    /// MFLOPs, the official formula.
    case flops
    /// Milliseconds predicted by a latency table (`measure-latency --table-out`).
    case latency
}
