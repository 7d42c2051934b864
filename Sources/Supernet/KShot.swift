#if canImport(Glibc)
import Glibc
#endif
import NASCore

/// The settings of a K-shot supernet (K-shot NAS, Su et al., ICML 2021): K copies of
/// every weight-shared convolution and of the classifier, mixed per subnet by simplex
/// codes that a small simplex-net computes from the subnet's encoding.
public struct KShotConfig: Sendable, Equatable {
    /// K, at least 2 (K = 1 is the plain supernet, which has no K-shot layout).
    public var copies: Int
    /// Softmax temperature of the codes (the paper's tau; 0.3).
    public var temperature: Double
    /// Hidden units of the simplex-net's MLP.
    public var hidden: Int

    public static let defaultTemperature = 0.3
    public static let defaultHidden = 32

    public init(copies: Int, temperature: Double = KShotConfig.defaultTemperature, hidden: Int = KShotConfig.defaultHidden) {
        precondition(copies >= 2 && temperature > 0 && hidden >= 1, "K-shot needs K >= 2, a positive temperature and hidden units")
        self.copies = copies
        self.temperature = temperature
        self.hidden = hidden
    }
}

/// Where a K-shot supernet keeps its copies and its simplex-net, appended to the
/// official parameter layout (whose K-shot tensors then hold the mixed weights of the
/// subnet last run). Checkpoint names:
///
/// - `kshot.copies.<k>.<official name>` for k in 0..<K: the copies;
/// - `kshot.simplex_net.hidden.weight` [H, D], `.hidden.bias` [H]: the MLP's hidden layer
///   on the subnet's encoding (D one-hot inputs), ReLU;
/// - `kshot.simplex_net.code.weight` [G*K, H], `.code.bias` [G*K]: the code logits of the
///   G layer groups;
/// - `kshot.simplex_net.channel.weight` [G*K, C]: the channel branch, a linear map from
///   the width and expand-ratio one-hots (C of them) straight to the logits.
///
/// Codes: `lambda_g = softmax((code.W relu(hidden.W e + hidden.b) + code.b + channel.W c) / tau)`
/// per group g: the first conv, each supernet block, the last conv stage, the classifier.
public struct KShotLayout: Sendable {
    public let config: KShotConfig
    /// An official tensor with K copies: its entry, its layer group, the copies' offsets.
    public struct Shared: Sendable {
        public let official: LayoutEntry
        public let group: Int
        public let copyOffsets: [Int]
    }
    public let shared: [Shared]
    /// Index into `shared` by the official entry's parameter offset.
    public let sharedIndex: [Int: Int]
    /// Layer groups (codes per subnet: `groups * copies`).
    public let groups: Int
    /// Inputs of the MLP (the whole encoding) and of the channel branch.
    public let encodingSize: Int
    public let channelSize: Int
    public let hiddenWeight: LayoutEntry, hiddenBias: LayoutEntry
    public let codeWeight: LayoutEntry, codeBias: LayoutEntry
    public let channelWeight: LayoutEntry

    public static let copyPrefix = "kshot.copies."
    public static let simplexPrefix = "kshot.simplex_net."

    /// Whether an official tensor is K-shot: every convolution weight and the classifier.
    static func isShared(_ e: LayoutEntry) -> Bool {
        e.role == .convWeight || e.name.hasPrefix("classifier.")
    }

    /// The layer group of an official tensor name (`blocks` supernet blocks).
    static func group(of name: String, blocks: Int) -> Int {
        if name.hasPrefix("first_conv.") { return 0 }
        if name.hasPrefix("blocks.") {
            let rest = name.dropFirst("blocks.".count)
            return 1 + (Int(rest.prefix { $0 != "." }) ?? 0)
        }
        if name.hasPrefix("last_conv.") { return blocks + 1 }
        return blocks + 2
    }

    /// Builds the K-shot part of a layout: `add(name, shape, role)` appends an entry
    /// to the parameter layout and returns it.
    init(config: KShotConfig, official: [LayoutEntry], space: SearchSpace, blocks: Int,
         add: (String, [Int], EntryRole) -> LayoutEntry) {
        self.config = config
        let sharedEntries = official.filter(Self.isShared)
        var copies = [[Int]](repeating: [], count: sharedEntries.count)
        for k in 0..<config.copies {
            for (i, e) in sharedEntries.enumerated() {
                copies[i].append(add("\(Self.copyPrefix)\(k).\(e.name)", e.shape, e.role).offset)
            }
        }
        shared = sharedEntries.enumerated().map { i, e in
            Shared(official: e, group: Self.group(of: e.name, blocks: blocks), copyOffsets: copies[i])
        }
        var index: [Int: Int] = [:]
        for (i, s) in shared.enumerated() { index[s.official.offset] = i }
        sharedIndex = index
        groups = blocks + 3
        let fields = KShotEncoding.fields(space)
        encodingSize = fields.reduce(0) { $0 + $1.choices.count }
        channelSize = fields.filter(\.isChannel).reduce(0) { $0 + $1.choices.count }
        let h = config.hidden, out = groups * config.copies
        hiddenWeight = add(Self.simplexPrefix + "hidden.weight", [h, encodingSize], .linearWeight)
        hiddenBias = add(Self.simplexPrefix + "hidden.bias", [h], .bias)
        codeWeight = add(Self.simplexPrefix + "code.weight", [out, h], .linearWeight)
        codeBias = add(Self.simplexPrefix + "code.bias", [out], .bias)
        channelWeight = add(Self.simplexPrefix + "channel.weight", [out, channelSize], .linearWeight)
    }

    /// The whole of an official tensor as a slice: OIHW `[o, i, k, k]`, a matrix `[o, i]`
    /// or a vector `[o]` (as `[o, 1]`).
    static func fullSlice(_ e: LayoutEntry) -> ConvWeightSlice {
        let o = e.shape.first ?? 1
        let i = e.shape.count >= 2 ? e.shape[1] : 1
        let k = e.shape.count == 4 ? e.shape[2] : 1
        precondition(o * i * k * k == e.count, "KShotLayout: \(e.name) is not OIHW, a matrix or a vector")
        return ConvWeightSlice(full: o, i, kernel: k)
    }

    /// The simplex-net's tensors, in layout order.
    public var simplexEntries: [LayoutEntry] { [hiddenWeight, hiddenBias, codeWeight, codeBias, channelWeight] }
}

/// A subnet's encoding for the simplex-net: one one-hot block per arch field (the
/// resolution, 9 widths, 7 depths, 7 kernel sizes, 7 expand ratios) over that field's
/// choices in the space; a value outside the choices (a resolution override) is all zeros.
/// The channel branch reads the width and expand-ratio blocks.
public enum KShotEncoding {
    struct Field {
        var choices: [Int]
        var isChannel: Bool
        var value: (Arch) -> Int
    }

    static func fields(_ space: SearchSpace) -> [Field] {
        var out = [Field(choices: space.resolutions, isChannel: false) { $0.resolution }]
        for (i, c) in space.widthChoices.enumerated() { out.append(Field(choices: c, isChannel: true) { $0.width[i] }) }
        for (i, c) in space.depthChoices.enumerated() { out.append(Field(choices: c, isChannel: false) { $0.depth[i] }) }
        for (i, c) in space.kernelChoices.enumerated() { out.append(Field(choices: c, isChannel: false) { $0.kernelSize[i] }) }
        for (i, c) in space.expandChoices.enumerated() { out.append(Field(choices: c, isChannel: true) { $0.expandRatio[i] }) }
        return out
    }

    /// The MLP's input and the channel branch's input.
    public static func encode(_ arch: Arch, in space: SearchSpace) -> (all: [Float], channel: [Float]) {
        var all: [Float] = [], channel: [Float] = []
        for f in fields(space) {
            let v = f.value(arch)
            let hot = f.choices.map { $0 == v ? Float(1) : 0 }
            all += hot
            if f.isChannel { channel += hot }
        }
        return (all, channel)
    }
}

/// One subnet's simplex codes and what their backward pass needs.
public struct SimplexCodes: Sendable {
    public var encoding: [Float]
    public var channel: [Float]
    /// Hidden pre-activations and activations.
    public var hiddenInput: [Float]
    public var hidden: [Float]
    /// `[groups, copies]`: each row on the simplex (non-negative, sums to 1).
    public var codes: [Float]
}

/// The simplex-net (forward and backward), reading its tensors from a flat parameter
/// buffer in the supernet layout.
public enum SimplexNet {
    public static func codes(for arch: Arch, in space: SearchSpace, layout k: KShotLayout,
                             parameters p: UnsafeBufferPointer<Float>) -> SimplexCodes {
        let (x, xc) = KShotEncoding.encode(arch, in: space)
        let h = k.config.hidden, d = k.encodingSize, c = k.channelSize, n = k.groups * k.config.copies
        var pre = [Float](repeating: 0, count: h)
        for j in 0..<h {
            var s = Double(p[k.hiddenBias.offset + j])
            for i in 0..<d where x[i] != 0 { s += Double(p[k.hiddenWeight.offset + j * d + i]) * Double(x[i]) }
            pre[j] = Float(s)
        }
        let hidden = pre.map { max(0, $0) }
        var logits = [Double](repeating: 0, count: n)
        for o in 0..<n {
            var s = Double(p[k.codeBias.offset + o])
            for j in 0..<h where hidden[j] != 0 { s += Double(p[k.codeWeight.offset + o * h + j]) * Double(hidden[j]) }
            for i in 0..<c where xc[i] != 0 { s += Double(p[k.channelWeight.offset + o * c + i]) * Double(xc[i]) }
            logits[o] = s / k.config.temperature
        }
        var codes = [Float](repeating: 0, count: n)
        let kk = k.config.copies
        for g in 0..<k.groups {
            let row = logits[(g * kk)..<((g + 1) * kk)]
            let m = row.max() ?? 0
            let e = row.map { exp($0 - m) }
            let total = e.reduce(0, +)
            for j in 0..<kk { codes[g * kk + j] = Float(e[j] / total) }
        }
        return SimplexCodes(encoding: x, channel: xc, hiddenInput: pre, hidden: hidden, codes: codes)
    }

    /// Adds the simplex-net's gradients into `gradients` given `dL/dcodes` (`[groups * copies]`).
    public static func backward(_ s: SimplexCodes, codeGradient: [Double], layout k: KShotLayout,
                                parameters p: UnsafeBufferPointer<Float>, gradients g: UnsafeMutableBufferPointer<Float>) {
        let kk = k.config.copies, h = k.config.hidden, d = k.encodingSize, c = k.channelSize
        let invT = 1 / k.config.temperature
        // Softmax backward per group: dz = lambda * (dlambda - <lambda, dlambda>) / tau.
        var dz = [Double](repeating: 0, count: k.groups * kk)
        for gr in 0..<k.groups {
            var inner = 0.0
            for j in 0..<kk { inner += Double(s.codes[gr * kk + j]) * codeGradient[gr * kk + j] }
            for j in 0..<kk {
                let o = gr * kk + j
                dz[o] = Double(s.codes[o]) * (codeGradient[o] - inner) * invT
            }
        }
        var dh = [Double](repeating: 0, count: h)
        for o in dz.indices where dz[o] != 0 {
            g[k.codeBias.offset + o] += Float(dz[o])
            for j in 0..<h {
                g[k.codeWeight.offset + o * h + j] += Float(dz[o] * Double(s.hidden[j]))
                dh[j] += dz[o] * Double(p[k.codeWeight.offset + o * h + j])
            }
            for i in 0..<c where s.channel[i] != 0 { g[k.channelWeight.offset + o * c + i] += Float(dz[o] * Double(s.channel[i])) }
        }
        for j in 0..<h where s.hiddenInput[j] > 0 {
            g[k.hiddenBias.offset + j] += Float(dh[j])
            for i in 0..<d where s.encoding[i] != 0 { g[k.hiddenWeight.offset + j * d + i] += Float(dh[j] * Double(s.encoding[i])) }
        }
    }
}

