/// `make_divisible(v, 8)` of the official nn_utils: round to the nearest
/// multiple of the divisor (ties up), at least `minValue`, and never more than
/// 10% below `v`.
public func makeDivisible(_ v: Double, divisor: Int = 8, minValue: Int = 1) -> Int {
    var newV = max(minValue, Int(v + Double(divisor) / 2) / divisor * divisor)
    if Double(newV) < 0.9 * v { newV += divisor }
    return newV
}

/// Python's `round()` for the products `in * expand_ratio` the official code
/// rounds: banker's rounding (ties to even).
func pythonRound(_ v: Double) -> Int { Int(v.rounded(.toNearestOrEven)) }

/// The shape of one active MBConv block of a subnet.
public struct BlockShape: Sendable, Equatable {
    /// Block index in the supernet (0-based over all stages' max-depth blocks).
    public var index: Int
    public var stage: Int
    public var inChannels: Int
    public var midChannels: Int
    public var outChannels: Int
    public var kernel: Int
    public var stride: Int
    /// Whether the block has an inverted-bottleneck 1x1 conv (the stage's
    /// largest expand ratio is above 1, as in the official dynamic layer).
    public var hasExpand: Bool
    public var seChannels: Int?
    /// Input spatial size (square) and output size.
    public var inSize: Int
    public var outSize: Int
}

extension Arch {
    /// The active blocks with their channels and sizes, as the official
    /// dynamic model runs them. Assumes a valid arch of `space`.
    public func blocks(in space: SearchSpace) -> [BlockShape] {
        var out: [BlockShape] = []
        var cin = width[0]
        var size = Arch.convOutput(resolution, stride: space.firstConv.stride)
        var blockBase = 0
        for (s, stage) in space.stages.enumerated() {
            let cout = width[s + 1]
            for i in 0..<depth[s] {
                let stride = i == 0 ? stage.stride : 1
                let mid = makeDivisible(Double(pythonRound(Double(cin) * Double(expandRatio[s]))))
                let outSize = Arch.convOutput(size, stride: stride)
                out.append(BlockShape(
                    index: blockBase + i, stage: s, inChannels: cin, midChannels: mid, outChannels: cout,
                    kernel: kernelSize[s], stride: stride, hasExpand: stage.maxExpand > 1,
                    seChannels: stage.useSE ? makeDivisible(Double(mid / 4)) : nil,
                    inSize: size, outSize: outSize))
                cin = cout
                size = outSize
            }
            blockBase += stage.maxDepth
        }
        return out
    }

    /// Output size of a 'same'-padded convolution: floor((n + 2p - k)/s) + 1
    /// with p = k/2, which is ceil(n / s) for odd k.
    public static func convOutput(_ n: Int, stride: Int) -> Int { (n + stride - 1) / stride }

    /// MFLOPs (multiply-accumulates, in millions) per image by the official
    /// `compute_active_subnet_flops`: convolutions, SE (both 1x1 convs, at 1x1),
    /// shortcut 1x1 convs where channels change, the v3 head and the classifier;
    /// BN, activations and pooling are not counted.
    public func flops(in space: SearchSpace) -> Double {
        func conv(_ cin: Int, _ cout: Int, _ size: Int, _ groups: Int, _ k: Int) -> Double {
            Double(cin) * Double(cout * size * size) * Double(k * k) / Double(groups)
        }
        var total = 0.0
        // The official formula divides the resolution by the stem stride with
        // floor division (it never meets odd sizes at stride 2 in its spaces).
        var size = resolution / space.firstConv.stride
        total += conv(3, width[0], size, 1, 3)
        var cin = width[0]
        for b in blocks(in: space) {
            if b.hasExpand { total += conv(cin, b.midChannels, size, 1, 1) }
            size = size % b.stride == 0 ? size / b.stride : (size + 1) / b.stride
            total += conv(b.midChannels, b.midChannels, size, b.midChannels, b.kernel)
            total += conv(b.midChannels, b.outChannels, size, 1, 1)
            if let se = b.seChannels { total += conv(b.midChannels, se, 1, 1, 1) * 2 }
            if cin != b.outChannels { total += conv(cin, b.outChannels, size, 1, 1) }
            cin = b.outChannels
        }
        let expand = finalExpandChannels
        total += conv(cin, expand, size, 1, 1)
        total += conv(expand, width[8], 1, 1, 1)
        total += Double(width[8] * space.nClasses)
        return total / 1e6
    }

    /// Parameters (millions) of the official static subnet
    /// (`get_active_subnet()`): every tensor of `parameters()`, BN affine and
    /// the classifier included. As in the official static ShortcutLayer, every
    /// block owns a shortcut 1x1 conv, also where it is an identity and unused.
    public func parameterCount(in space: SearchSpace) -> Int {
        var n = 3 * width[0] * 9 + 2 * width[0]
        for b in blocks(in: space) {
            if b.hasExpand && expandRatio[b.stage] != 1 { n += b.inChannels * b.midChannels + 2 * b.midChannels }
            n += b.midChannels * b.kernel * b.kernel + 2 * b.midChannels
            if let se = b.seChannels { n += b.midChannels * se + se + se * b.midChannels + b.midChannels }
            n += b.midChannels * b.outChannels + 2 * b.outChannels
            n += b.inChannels * b.outChannels
        }
        let expand = finalExpandChannels
        n += width[7] * expand + 2 * expand
        n += expand * width[8]
        n += width[8] * space.nClasses + space.nClasses
        return n
    }

    public func params(in space: SearchSpace) -> Double { Double(parameterCount(in: space)) / 1e6 }
}
