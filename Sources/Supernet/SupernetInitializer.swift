import NASCore

/// Initial weights of a new supernet, as the official model gets them: the
/// PyTorch defaults of its modules (conv and linear weights and biases
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups x kh x kw; BN
/// weight 1, bias 0, running mean 0, variance 1), then
/// `zero_residual_block_bn_weights`: the weight of every block's last BN
/// (point_linear) is 0, so each residual block starts as its shortcut.
///
/// A K-shot supernet's copy k is drawn as a whole supernet of its own (copy 0 with
/// `seed`, copy k with the k-th derived seed), so the copies differ from the start (equal
/// copies under equal codes would receive equal gradients forever); the official tensors
/// hold copy 0 until a subnet's mix replaces them. The simplex-net's hidden layer gets
/// PyTorch's Linear default; its code and channel layers start at zero, so every
/// subnet's codes start uniform (1/K).
public enum SupernetInitializer {
    public static func initialWeights(space: SearchSpace, seed: UInt64, kshot: KShotConfig? = nil) -> SupernetWeights {
        if let kshot { return kshotWeights(space: space, seed: seed, kshot: kshot) }
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

    static func kshotWeights(space: SearchSpace, seed: UInt64, kshot: KShotConfig) -> SupernetWeights {
        let plain = initialWeights(space: space, seed: seed)
        let layout = SupernetLayout(space: space, kshot: kshot)
        guard let k = layout.kshot else { preconditionFailure("a K-shot layout without its K-shot part") }
        var w = SupernetWeights(layout: layout)
        w.parameters.replaceSubrange(0..<layout.officialParameterCount, with: plain.parameters)
        w.buffers = plain.buffers
        w.batchesTracked = plain.batchesTracked
        for c in 0..<kshot.copies {
            var derived = SeededRandom.stream(seed: seed, index: 0x6b73_0000 + UInt64(c))
            let copy = c == 0 ? plain : initialWeights(space: space, seed: derived.next())
            for s in k.shared {
                w.parameters.replaceSubrange(s.copyOffsets[c]..<(s.copyOffsets[c] + s.official.count),
                                             with: copy.parameters[s.official.offset..<(s.official.offset + s.official.count)])
            }
        }
        var random = SeededRandom.stream(seed: seed, index: 0x6b73_ffff)
        let bound = 1 / Double(max(1, k.encodingSize)).squareRoot()
        for e in [k.hiddenWeight, k.hiddenBias] {
            w.set(e.name, (0..<e.count).map { _ in Float((random.uniform() * 2 - 1) * bound) })
        }
        return w
    }
}
