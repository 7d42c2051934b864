/// One parameter tensor's place in the flat parameter/gradient/momentum
/// buffers (llm.c layout: all parameters back to back, gradients and momentum
/// in the same layout), with its weight decay.
public struct ParameterSegment: Sendable, Equatable {
    /// The state_dict name (e.g. `blocks.3.mobile_inverted_conv.depth_conv.bn.bn.weight`).
    public var name: String
    /// First element in the flat buffers.
    public var offset: Int
    /// Number of elements.
    public var count: Int
    /// L2 weight decay added to the gradient as `grad + weightDecay * param`.
    public var weightDecay: Double

    public init(name: String, offset: Int, count: Int, weightDecay: Double) {
        precondition(offset >= 0 && count >= 0, "segment offset and count must be non-negative")
        self.name = name
        self.offset = offset
        self.count = count
        self.weightDecay = weightDecay
    }

    public var range: Range<Int> { offset ..< offset + count }
}

/// The two parameter groups of the official optimizer (AttentiveNAS
/// `solver/build.py` `build_optimizer`, used unchanged by AlphaNet).
public enum WeightDecayGroup: String, Sendable, Equatable, CaseIterable {
    /// Conv and linear weights: `weight_decay_weight` (AlphaNet: 1e-5).
    case weight
    /// BatchNorm gammas/betas and all biases: `weight_decay_bn_bias` (AlphaNet: 0).
    case bnBias = "bn_bias"

    /// The official rule, a test on the **name only**: a parameter whose name
    /// contains `".bn"` or `".bias"` goes to `bn_bias`, every other to `weight`.
    /// (For the AttentiveNAS dynamic model this coincides with "rank 1 means no
    /// decay": BN weights/biases, SE conv biases and the classifier bias are
    /// exactly its rank-1 parameters; `rank` is checked against that in debug
    /// builds when given.) Only trainable parameters are classified; buffers
    /// such as `running_mean` are not optimised at all.
    public static func official(parameterName name: String, rank: Int? = nil) -> WeightDecayGroup {
        let group: WeightDecayGroup = name.contains(".bn") || name.contains(".bias") ? .bnBias : .weight
        assert(rank.map { ($0 == 1) == (group == .bnBias) } ?? true,
               "parameter \(name) of rank \(rank ?? -1): name rule and rank rule disagree")
        return group
    }
}

extension ParameterSegment {
    /// Lays `parameters` (name and element count, in order) out back to back
    /// and gives each the official group's weight decay.
    public static func officialLayout(
        _ parameters: [(name: String, count: Int)],
        weightDecayWeight: Double = 1e-5, weightDecayBNBias: Double = 0
    ) -> [ParameterSegment] {
        var offset = 0
        return parameters.map { p in
            let decay = WeightDecayGroup.official(parameterName: p.name) == .weight ? weightDecayWeight : weightDecayBNBias
            defer { offset += p.count }
            return ParameterSegment(name: p.name, offset: offset, count: p.count, weightDecay: decay)
        }
    }
}
