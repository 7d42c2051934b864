import NASCore

/// Initial weights of a new supernet, as the official model gets them: the
/// PyTorch defaults of its modules (conv and linear weights and biases
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups x kh x kw; BN
/// weight 1, bias 0, running mean 0, variance 1), then
/// `zero_residual_block_bn_weights`: the weight of every block's last BN
/// (point_linear) is 0, so each residual block starts as its shortcut.
public enum SupernetInitializer {
    public static func initialWeights(space: SearchSpace, seed: UInt64) -> SupernetWeights {
        let layout = SupernetLayout(space: space)
        var w = SupernetWeights(layout: layout)
        var random = SeededRandom(seed: seed)
        var fanIn: [String: Int] = [:]
        for e in layout.entries where e.role == .convWeight || e.role == .linearWeight {
            fanIn[String(e.name.dropLast(".weight".count))] = e.shape.dropFirst().reduce(1, *)
        }
        for e in layout.entries {
            switch e.role {
            case .convWeight, .linearWeight, .bias:
                let owner = String(e.name.dropLast(e.role == .bias ? ".bias".count : ".weight".count))
                let bound = 1 / Double(max(1, fanIn[owner] ?? 1)).squareRoot()
                w.set(e.name, (0..<e.count).map { _ in Float((random.uniform() * 2 - 1) * bound) })
            case .bnWeight:
                let isResidualEnd = e.name.hasSuffix("point_linear.bn.bn.weight")
                w.set(e.name, [Float](repeating: isResidualEnd ? 0 : 1, count: e.count))
            case .bnBias, .runningMean:
                w.set(e.name, [Float](repeating: 0, count: e.count))
            case .runningVar:
                w.set(e.name, [Float](repeating: 1, count: e.count))
            case .numBatchesTracked:
                break
            }
        }
        return w
    }
}
