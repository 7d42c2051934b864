import NASCore

/// A subnet's inference computation as a graph of layers over numbered values, in the
/// order the engine runs them (evaluation mode: BatchNorm with the running statistics,
/// no dropout or drop-connect), with every weight cut out of the supernet (a K-shot
/// supernet's tensors mixed by the subnet's codes). Layouts are PyTorch's: values NCHW,
/// convolution weights OIHW `[cout, cin / groups, k, k]`, linear weights `[out, in]`.
/// This is what `export-subnet --format onnx` writes; it is built from the same plan
/// `Supernet.forward` runs, so the two cannot drift apart.
///
/// Value 0 is the input `[n, 3, resolution, resolution]` (normalised RGB), `output`
/// the logits `[n, classes]`; every layer writes one new value.
public struct InferenceGraph: Sendable {
    /// A convolution: dense (the stem), depthwise (`groups` = channels) or 1x1; 'same'
    /// padding `pad = k / 2`; no bias unless folded from a BatchNorm.
    public struct Convolution: Sendable {
        public var input: Int, output: Int
        public var weight: [Float]
        /// `[cout, cin / groups, k, k]`.
        public var shape: [Int]
        public var bias: [Float]?
        public var stride: Int, pad: Int, groups: Int
    }

    /// `y = scale (x - mean) / sqrt(variance + epsilon) + bias` per channel.
    public struct Normalization: Sendable {
        public var input: Int, output: Int
        public var scale: [Float], bias: [Float], mean: [Float], variance: [Float]
        public var epsilon: Float
    }

    /// Squeeze-and-excitation (official `SE`): `s = hsigmoid(We relu(Wr mean_hw(x) + br) + be)`,
    /// `y = x s`; `reduceWeight` `[mid, c]`, `expandWeight` `[c, mid]`.
    public struct SqueezeExcitation: Sendable {
        public var input: Int, output: Int
        public var reduceWeight: [Float], reduceBias: [Float]
        public var expandWeight: [Float], expandBias: [Float]
        public var channels: Int, mid: Int
    }

    /// `y = x Wᵀ + b` on `[n, inFeatures]` (the input flattened); `weight` `[out, in]`.
    public struct Dense: Sendable {
        public var input: Int, output: Int
        public var weight: [Float]
        public var bias: [Float]?
        public var inFeatures: Int, outFeatures: Int
    }

    public enum Layer: Sendable {
        case convolution(Convolution)
        case normalization(Normalization)
        case activation(Activation, input: Int, output: Int)
        case squeezeExcitation(SqueezeExcitation)
        /// The shortcut's 2x2 average pooling, stride 2, `pad` on each side, padding counted
        /// (every window divides by 4).
        case shortcutPool(input: Int, output: Int, pad: Int)
        case add(Int, Int, output: Int)
        /// `[n, c, h, w]` to `[n, c]`.
        case globalAveragePool(input: Int, output: Int)
        case dense(Dense)
    }

    public var layers: [Layer]
    public var output: Int
    public var resolution: Int
    public var classes: Int

    /// The same function with every BatchNorm that directly follows a convolution folded
    /// into that convolution (`W' = W s`, `b' = (b - mean) s + beta`, `s = gamma /
    /// sqrt(var + eps)` per output channel, computed in double and rounded once); equal
    /// to the unfolded graph up to float rounding (about 1e-6 relative).
    public func foldingBatchNorm() -> InferenceGraph {
        var out: [Layer] = []
        var rename: [Int: Int] = [:]  // a folded BN's output -> the convolution's output
        func r(_ v: Int) -> Int { rename[v] ?? v }
        var i = 0
        while i < layers.count {
            if case var .convolution(conv) = layers[i], i + 1 < layers.count,
               case let .normalization(bn) = layers[i + 1], bn.input == conv.output {
                let cout = conv.shape[0], per = conv.weight.count / cout
                var bias = [Float](repeating: 0, count: cout)
                for o in 0..<cout {
                    let s = Double(bn.scale[o]) / (Double(bn.variance[o]) + Double(bn.epsilon)).squareRoot()
                    for j in 0..<per { conv.weight[o * per + j] = Float(Double(conv.weight[o * per + j]) * s) }
                    bias[o] = Float((Double(conv.bias?[o] ?? 0) - Double(bn.mean[o])) * s + Double(bn.bias[o]))
                }
                conv.bias = bias
                conv.input = r(conv.input)
                rename[bn.output] = conv.output
                out.append(.convolution(conv))
                i += 2
                continue
            }
            out.append(layers[i].renamingInputs(r))
            i += 1
        }
        return InferenceGraph(layers: out, output: r(output), resolution: resolution, classes: classes)
    }
}

extension InferenceGraph.Layer {
    /// The layer with each input value `v` read as `rename(v)`.
    func renamingInputs(_ rename: (Int) -> Int) -> Self {
        switch self {
        case var .convolution(c): c.input = rename(c.input); return .convolution(c)
        case var .normalization(b): b.input = rename(b.input); return .normalization(b)
        case let .activation(a, x, y): return .activation(a, input: rename(x), output: y)
        case var .squeezeExcitation(s): s.input = rename(s.input); return .squeezeExcitation(s)
        case let .shortcutPool(x, y, p): return .shortcutPool(input: rename(x), output: y, pad: p)
        case let .add(a, b, y): return .add(rename(a), rename(b), output: y)
        case let .globalAveragePool(x, y): return .globalAveragePool(input: rename(x), output: y)
        case var .dense(d): d.input = rename(d.input); return .dense(d)
        }
    }
}

extension Supernet {
    /// The inference graph of `arch` at its resolution (a K-shot supernet's tensors are
    /// mixed for it first). BatchNorm uses the running statistics as they are now:
    /// recalibrate first for a subnet's own.
    public func inferenceGraph(for arch: Arch) -> InferenceGraph {
        let shape = Shape4(n: 1, h: arch.resolution, w: arch.resolution, c: 3)
        let t = plan(arch: arch, inShape: shape, normalization: .runningStatistics, trainable: false, regularization: .none)
        prepareWeights(for: arch)
        var names: [Int: Int] = [t.input.id: 0]
        var next = 1
        func read(_ b: Buf) -> Int {
            guard let v = names[b.id] else { preconditionFailure("inferenceGraph: buffer \(b.id) read before it is written") }
            return v
        }
        func write(_ b: Buf) -> Int {
            defer { next += 1 }
            names[b.id] = next
            return next
        }
        func cut(_ r: TensorRef, _ s: ConvWeightSlice) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(s.cout * s.cin * s.k * s.k)
            for o in 0..<s.cout {
                for i in 0..<s.cin {
                    for kh in 0..<s.k {
                        for kw in 0..<s.k { out.append(parameters[r.offset + s.index(o, i, kh, kw)]) }
                    }
                }
            }
            return out
        }
        func head(_ r: TensorRef, _ c: Int, running: Bool = false) -> [Float] {
            (0..<c).map { running ? buffers[r.offset + $0] : parameters[r.offset + $0] }
        }
        func matrix(_ r: TensorRef, rows: Int, columns: Int, stride: Int) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(rows * columns)
            for o in 0..<rows {
                for i in 0..<columns { out.append(parameters[r.offset + o * stride + i]) }
            }
            return out
        }
        var layers: [InferenceGraph.Layer] = []
        for op in t.ops {
            switch op {
            case .resize, .dropConnect, .dropout:
                preconditionFailure("inferenceGraph: \(op.kind) in an inference plan at the arch's resolution")
            case let .conv(c):
                let x = read(c.x)
                layers.append(.convolution(.init(input: x, output: write(c.y), weight: cut(c.w, c.slice),
                                                 shape: [c.slice.cout, c.slice.cin, c.slice.k, c.slice.k], bias: nil,
                                                 stride: c.stride, pad: c.slice.k / 2, groups: 1)))
            case let .depthwise(c):
                let x = read(c.x)
                layers.append(.convolution(.init(input: x, output: write(c.y), weight: cut(c.w, c.slice),
                                                 shape: [c.slice.cout, 1, c.slice.k, c.slice.k], bias: nil,
                                                 stride: c.stride, pad: c.slice.k / 2, groups: c.slice.cout)))
            case let .pointwise(c):
                let x = read(c.x)
                layers.append(.convolution(.init(input: x, output: write(c.y), weight: cut(c.w, c.slice),
                                                 shape: [c.slice.cout, c.slice.cin, 1, 1], bias: c.bias.map { head($0, c.slice.cout) },
                                                 stride: 1, pad: 0, groups: 1)))
            case let .batchNorm(b):
                let c = b.xs.c
                let x = read(b.x)
                let y = write(b.y)
                layers.append(.normalization(.init(input: x, output: y, scale: head(b.gamma, c), bias: head(b.beta, c),
                                                   mean: head(b.mean, c, running: true), variance: head(b.variance, c, running: true),
                                                   epsilon: BatchNorm.eps)))
                if b.activation != .identity {
                    layers.append(.activation(b.activation, input: y, output: write(b.y)))
                }
            case let .activation(a, x, y):
                let xv = read(x)
                layers.append(.activation(a, input: xv, output: write(y)))
            case let .squeezeExcite(s):
                let c = s.xs.c, x = read(s.x)
                layers.append(.squeezeExcitation(.init(
                    input: x, output: write(s.y),
                    reduceWeight: matrix(s.reduceW, rows: s.mid, columns: c, stride: s.cMax), reduceBias: head(s.reduceB, s.mid),
                    expandWeight: matrix(s.expandW, rows: c, columns: s.mid, stride: s.midMax), expandBias: head(s.expandB, c),
                    channels: c, mid: s.mid)))
            case let .avgPool(xs, x, y):
                let xv = read(x)
                layers.append(.shortcutPool(input: xv, output: write(y), pad: ShortcutAvgPool.padding(xs)))
            case let .add(a, b, y):
                let av = read(a), bv = read(b)
                layers.append(.add(av, bv, output: write(y)))
            case let .globalPool(_, x, y):
                let xv = read(x)
                layers.append(.globalAveragePool(input: xv, output: write(y)))
            case let .linear(l):
                let x = read(l.x)
                layers.append(.dense(.init(input: x, output: write(l.y),
                                           weight: matrix(l.w, rows: l.outFeatures, columns: l.inFeatures, stride: l.inMax),
                                           bias: l.bias.map { head($0, l.outFeatures) }, inFeatures: l.inFeatures, outFeatures: l.outFeatures)))
            }
        }
        return InferenceGraph(layers: layers, output: read(t.logits), resolution: arch.resolution, classes: space.nClasses)
    }
}
