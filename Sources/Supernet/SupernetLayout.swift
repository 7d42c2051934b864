/// What a state_dict entry is, which decides its initial value, whether it
/// is trained, and whether it takes weight decay.
public enum EntryRole: Sendable, Equatable {
    /// Convolution weight [O, I, kh, kw] (OIHW, PyTorch layout).
    case convWeight
    /// Classifier weight [out, in].
    case linearWeight
    /// Bias of the SE convs or the classifier.
    case bias
    case bnWeight, bnBias
    case runningMean, runningVar
    /// int64 scalar, kept for state_dict compatibility.
    case numBatchesTracked

    /// Trained by SGD (parameters), as opposed to buffers.
    public var isParameter: Bool {
        switch self {
        case .convWeight, .linearWeight, .bias, .bnWeight, .bnBias: return true
        default: return false
        }
    }

    /// Weight decay applies to conv and linear weights only; the official
    /// AlphaNet config sets weight_decay_bn_bias 0 for BN parameters and biases.
    public var takesWeightDecay: Bool { self == .convWeight || self == .linearWeight }
}

/// One state_dict entry of the official AttentiveNAS dynamic supernet, with
/// its place in our flat parameter or buffer storage.
public struct LayoutEntry: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: EntryRole
    /// Offset into `SupernetLayout.parameterCount` floats (parameters) or
    /// `bufferCount` floats (running statistics); unused for num_batches_tracked.
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The names, shapes and order of every tensor of the official dynamic
/// supernet's `state_dict()` for a space, and the flat layout we store them in:
/// parameters contiguous (so gradients and momentum share one layout and the
/// optimizer is one loop), running statistics in a second array.
public struct SupernetLayout: Sendable {
    public let entries: [LayoutEntry]
    public let parameterCount: Int
    /// Parameters of the official state_dict (all of them when not K-shot); a K-shot
    /// layout appends its copies and simplex-net after them.
    public let officialParameterCount: Int
    public let bufferCount: Int
    /// The copies and simplex-net of a K-shot supernet; nil: the plain supernet.
    public let kshot: KShotLayout?
    private let index: [String: Int]

    public subscript(name: String) -> LayoutEntry? { index[name].map { entries[$0] } }

    /// Max-shape channel counts per block, as the official constructor builds them.
    public struct BlockDims: Sendable, Equatable {
        public var stage: Int
        public var inMax: Int
        public var midMax: Int
        public var outMax: Int
        public var kernelMax: Int
        public var seMax: Int?
        public var hasExpand: Bool
        public var prefix: String
    }

    public let blocks: [BlockDims]
    /// Index of the first supernet block of each stage.
    public let stageStart: [Int]

    /// The layout of `space`, with K copies of the weight-shared tensors when `kshot` is given.
    public init(space: SearchSpace, kshot: KShotConfig? = nil) {
        var entries: [LayoutEntry] = []
        var pOffset = 0, bOffset = 0
        func add(_ name: String, _ shape: [Int], _ role: EntryRole) {
            let count = shape.reduce(1, *)
            var offset = 0
            if role.isParameter { offset = pOffset; pOffset += count } else if role != .numBatchesTracked { offset = bOffset; bOffset += count }
            entries.append(LayoutEntry(name: name, shape: shape, role: role, offset: offset))
        }
        func bn(_ prefix: String, _ c: Int) {
            add("\(prefix).bn.bn.weight", [c], .bnWeight)
            add("\(prefix).bn.bn.bias", [c], .bnBias)
            add("\(prefix).bn.bn.running_mean", [c], .runningMean)
            add("\(prefix).bn.bn.running_var", [c], .runningVar)
            add("\(prefix).bn.bn.num_batches_tracked", [], .numBatchesTracked)
            for j in 0..<2 {
                add("\(prefix).bn.bn_tracking.\(j).running_mean", [c], .runningMean)
                add("\(prefix).bn.bn_tracking.\(j).running_var", [c], .runningVar)
                add("\(prefix).bn.bn_tracking.\(j).num_batches_tracked", [], .numBatchesTracked)
            }
        }
        let c0 = space.firstConv.maxWidth
        add("first_conv.conv.conv.weight", [c0, 3, 3, 3], .convWeight)
        bn("first_conv", c0)
        var blocks: [BlockDims] = []
        var stageStart: [Int] = []
        var cin = c0
        for (s, stage) in space.stages.enumerated() {
            stageStart.append(blocks.count)
            let cout = stage.maxWidth
            for _ in 0..<stage.maxDepth {
                let i = blocks.count
                let p = "blocks.\(i).mobile_inverted_conv"
                let mid = pythonRound(Double(cin) * Double(stage.maxExpand))
                let k = stage.maxKernel
                let hasExpand = stage.maxExpand > 1
                if hasExpand {
                    add("\(p).inverted_bottleneck.conv.conv.weight", [mid, cin, 1, 1], .convWeight)
                    bn("\(p).inverted_bottleneck", mid)
                }
                add("\(p).depth_conv.conv.conv.weight", [mid, 1, k, k], .convWeight)
                bn("\(p).depth_conv", mid)
                var se: Int?
                if stage.useSE {
                    let m = makeDivisible(Double(mid / 4))
                    se = m
                    add("\(p).depth_conv.se.fc.reduce.weight", [m, mid, 1, 1], .convWeight)
                    add("\(p).depth_conv.se.fc.reduce.bias", [m], .bias)
                    add("\(p).depth_conv.se.fc.expand.weight", [mid, m, 1, 1], .convWeight)
                    add("\(p).depth_conv.se.fc.expand.bias", [mid], .bias)
                }
                add("\(p).point_linear.conv.conv.weight", [cout, mid, 1, 1], .convWeight)
                bn("\(p).point_linear", cout)
                add("blocks.\(i).shortcut.conv.conv.weight", [cout, cin, 1, 1], .convWeight)
                blocks.append(BlockDims(stage: s, inMax: cin, midMax: mid, outMax: cout, kernelMax: k, seMax: se, hasExpand: hasExpand, prefix: "blocks.\(i)"))
                cin = cout
            }
        }
        let expand = cin * 6
        add("last_conv.final_expand_layer.conv.conv.weight", [expand, cin, 1, 1], .convWeight)
        bn("last_conv.final_expand_layer", expand)
        add("last_conv.feature_mix_layer.conv.conv.weight", [space.lastConv.maxWidth, expand, 1, 1], .convWeight)
        add("classifier.linear.linear.weight", [space.nClasses, space.lastConv.maxWidth], .linearWeight)
        add("classifier.linear.linear.bias", [space.nClasses], .bias)

        officialParameterCount = pOffset
        if let kshot {
            let official = entries
            self.kshot = KShotLayout(config: kshot, official: official, space: space, blocks: blocks.count) { name, shape, role in
                add(name, shape, role)
                return entries[entries.count - 1]
            }
        } else {
            self.kshot = nil
        }
        self.entries = entries
        parameterCount = pOffset
        bufferCount = bOffset
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.index = index
        self.blocks = blocks
        self.stageStart = stageStart
    }
}
