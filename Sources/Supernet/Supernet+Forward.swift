import Dispatch
import NASCore

/// A region of the activation arena (offset and length in floats).
struct Buf: Equatable {
    var id: Int
    var offset: Int
    var count: Int
}

/// A parameter or running-statistics tensor: its offset and full length.
struct TensorRef {
    var offset: Int
    var count: Int
    init(_ e: LayoutEntry) { offset = e.offset; count = e.count }
}

/// One recorded layer of a forward pass, with what its backward needs. Cases with
/// more than three fields carry a named payload, so every switch reads them by name.
enum Op {
    case resize(ResizeStep)
    /// The stem's dense convolution.
    case conv(ConvStep)
    case pointwise(PointwiseStep)
    case depthwise(ConvStep)
    /// BN (batch statistics, calibration or running statistics as the tape's mode says),
    /// followed in the same pass by `activation` (identity: none); `y` is the activation's
    /// output, and is `x` itself (in place) on tapes without a backward pass.
    case batchNorm(BatchNormStep)
    case activation(Activation, x: Buf, y: Buf)
    case squeezeExcite(SqueezeExciteStep)
    case dropConnect(DropConnectStep)
    /// The shortcut's 2x2 average pooling: x `[n, h, w, c]` of shape `xs`.
    case avgPool(xs: Shape4, x: Buf, y: Buf)
    /// `y = a + b` (the residual add).
    case add(a: Buf, b: Buf, y: Buf)
    /// Global average pooling: x `[n, h, w, c]` of shape `xs`, y `[n, c]`.
    case globalPool(xs: Shape4, x: Buf, y: Buf)
    case linear(LinearStep)
    case dropout(DropoutStep)
}

/// Bicubic resize of the input image: x `[n, h, w, 3]` of shape `xs` to y of shape `ys`.
struct ResizeStep {
    var x: Buf
    var xs: Shape4
    var y: Buf
    var ys: Shape4
}

/// A dense (the stem) or depthwise (`cin = cout`) convolution: x `[n, h, w, cin]` of
/// shape `xs`, y `[n, ho, wo, cout]`; `slice` the used part of the full OIHW weight `w`.
struct ConvStep {
    var w: TensorRef
    var slice: ConvWeightSlice
    var stride: Int
    var x: Buf
    var xs: Shape4
    var y: Buf
}

/// A 1x1 convolution: x `[n, h, w, slice.cin]` of shape `xs`, y `[n, h, w, slice.cout]`;
/// `slice` the used part of the full weight `w`, `bias` (if any) `[:cout]` of `[outMax]`.
struct PointwiseStep {
    var w: TensorRef
    var slice: ConvWeightSlice
    var bias: TensorRef?
    var x: Buf
    var xs: Shape4
    var y: Buf
}

/// BN and its fused activation: x and y `[n, h, w, c]` of shape `xs`; of the full
/// parameter and running-statistics tensors the first `c` channels are used;
/// `saveMean` and `saveInvStd` `[c]` keep the batch statistics for backward.
struct BatchNormStep {
    var gamma: TensorRef
    var beta: TensorRef
    var mean: TensorRef
    var variance: TensorRef
    var xs: Shape4
    var x: Buf
    var y: Buf
    var saveMean: Buf
    var saveInvStd: Buf
    var activation: Activation
}

/// Squeeze-and-excitation: x and y `[n, h, w, c]` of shape `xs`; reduce weight
/// `[midMax, cMax, 1, 1]` and bias `[midMax]`, expand weight `[cMax, midMax, 1, 1]`
/// and bias `[cMax]`, of which `mid` x `c` are used; `saved` holds
/// `SqueezeExcite.savedCount(n:c:mid:)` floats for backward.
struct SqueezeExciteStep {
    var reduceW: TensorRef
    var reduceB: TensorRef
    var expandW: TensorRef
    var expandB: TensorRef
    var cMax: Int
    var midMax: Int
    var mid: Int
    var xs: Shape4
    var x: Buf
    var y: Buf
    var saved: Buf
}

/// Per-sample drop-connect with rate `p`: x and y `[n, h, w, c]` of shape `xs`,
/// `factors` `[n]` saved for backward.
struct DropConnectStep {
    var p: Float
    var xs: Shape4
    var x: Buf
    var y: Buf
    var factors: Buf
}

/// Fully connected layer: x `[n, inFeatures]`, y `[n, outFeatures]`; of the weight `w`
/// (rows of `inMax`) the first `outFeatures` rows and `inFeatures` columns are used,
/// `bias` (if any) `[outFeatures]`.
struct LinearStep {
    var w: TensorRef
    var inMax: Int
    var outFeatures: Int
    var bias: TensorRef?
    var n: Int
    var inFeatures: Int
    var x: Buf
    var y: Buf
}

/// Dropout with rate `p`: x, y and the saved `mask` of `x.count` floats.
struct DropoutStep {
    var p: Float
    var x: Buf
    var y: Buf
    var mask: Buf
}

extension Op {
    /// Short name of the op type (per-op profiling).
    var kind: String {
        switch self {
        case .resize: "resize"
        case .conv: "conv"
        case .pointwise: "pointwise"
        case .depthwise: "depthwise"
        case .batchNorm: "batchNorm"
        case let .activation(a, _, _): "activation.\(a)"
        case .squeezeExcite: "squeezeExcite"
        case .dropConnect: "dropConnect"
        case .avgPool: "avgPool"
        case .add: "add"
        case .globalPool: "globalPool"
        case .linear: "linear"
        case .dropout: "dropout"
        }
    }
}

/// Wall time per op type, summed over forward and backward passes while
/// `Supernet.profile` is set (benchmarks only; off by default).
public final class OpProfile {
    public private(set) var forward: [String: UInt64] = [:]
    public private(set) var backward: [String: UInt64] = [:]

    public init() {}

    func record(_ kind: String, forward isForward: Bool, nanoseconds: UInt64) {
        if isForward { forward[kind, default: 0] += nanoseconds } else { backward[kind, default: 0] += nanoseconds }
    }

    public func reset() {
        forward = [:]
        backward = [:]
    }
}

/// The ops of the last forward pass and the arena layout they use.
struct Tape {
    var ops: [Op] = []
    var size = 0
    /// Floats of the largest buffer (the size of the scratch region).
    var largestBuffer = 0
    /// Offset in the gradient arena of each buffer's gradient, by `Buf.id`
    /// (-1: none); trainable tapes only.
    var gradOffset: [Int] = []
    /// Floats of the gradient arena.
    var gradSize = 0
    var logits = Buf(id: -1, offset: 0, count: 0)
    var input = Buf(id: -1, offset: 0, count: 0)
    var trainable = false
    var normalization = NormalizationMode.runningStatistics
    /// Index of the first op of each segment after the first: the stem (with the input
    /// resize) is segment 0, each active block one more, the head the last.
    var segmentStarts: [Int] = []
}

/// The ops a tape holds: the whole network, its body (up to and including the global
/// pooling; the tape's `logits` are the pooled features), or its head (from the pooled
/// features, input `[n, 1, 1, features]`, to the logits).
enum TapePart {
    case whole, body, head
}

/// Plans arena offsets: bump allocation while a backward pass will need every
/// buffer, first-fit reuse of released regions otherwise.
struct ArenaPlanner {
    var size = 0
    var nextID = 0
    var free: [(offset: Int, count: Int)] = []
    let reuse: Bool
    var maxCount = 0

    init(reuse: Bool) { self.reuse = reuse }

    mutating func alloc(_ count: Int) -> Buf {
        // Round to 16 floats (64 bytes) so every buffer is cache-line aligned.
        let n = max(16, (count + 15) / 16 * 16)
        maxCount = max(maxCount, n)
        defer { nextID += 1 }
        if reuse, let i = free.firstIndex(where: { $0.count >= n }) {
            let r = free[i]
            if r.count == n { free.remove(at: i) } else { free[i] = (r.offset + n, r.count - n) }
            return Buf(id: nextID, offset: r.offset, count: count)
        }
        let b = Buf(id: nextID, offset: size, count: count)
        size += n
        return b
    }

    mutating func release(_ bufs: [Buf]) {
        guard reuse else { return }
        var seen = Set<Int>()
        for b in bufs where seen.insert(b.offset).inserted { free.append((b.offset, max(16, (b.count + 15) / 16 * 16))) }
        free.sort { $0.offset < $1.offset }
        var merged: [(offset: Int, count: Int)] = []
        for r in free {
            if let last = merged.last, last.offset + last.count == r.offset {
                merged[merged.count - 1].count += r.count
            } else {
                merged.append(r)
            }
        }
        free = merged
    }
}

extension Supernet {
    /// An evaluation-mode forward pass (running statistics) timed per segment: the
    /// nanoseconds of the stem (with the input's resize), of each active block in order,
    /// and of the head (pooling, feature mix, classifier), `arch.blocks(in:).count + 2`
    /// values. For latency tables (`LatencyTable`).
    public func segmentNanoseconds(arch: Arch, input: UnsafeBufferPointer<Float>, shape inShape: Shape4) -> [UInt64] {
        precondition(inShape.c == 3 && inShape.h == inShape.w && input.count >= inShape.count)
        tape = plan(arch: arch, inShape: inShape, normalization: .runningStatistics, trainable: false, regularization: .none)
        mixWeights(for: arch, regions: tape.parameterRegions)
        arena.reserve(values: tape.size, grads: tape.gradSize, scratch: tape.largestBuffer, context: context)
        let v = arena.values
        for i in 0..<inShape.count { v[tape.input.offset + i] = input[i] }
        var random = SeededRandom(seed: 0)
        var times = [UInt64](repeating: 0, count: tape.segmentStarts.count + 1)
        var segment = 0
        executeTape(random: &random) { i, run in
            while segment < tape.segmentStarts.count && i >= tape.segmentStarts[segment] { segment += 1 }
            let t0 = DispatchTime.now().uptimeNanoseconds
            run()
            times[segment] += DispatchTime.now().uptimeNanoseconds - t0
        }
        return times
    }

    /// Runs subnet `arch` on `input` (NHWC `[n, h, w, 3]`, normalised floats),
    /// bicubic-resizing to `arch.resolution` when `h` differs (as the official
    /// forward). Returns the logits `[n, n_classes]`. With `trainable`, keeps
    /// every activation for `backward`.
    ///
    /// - Parameters:
    ///   - normalization: batch statistics (training), running statistics
    ///     (evaluation) or calibration.
    ///   - regularization: dropout and drop-connect (training of the largest subnet).
    ///
    /// An evaluation pass (running statistics, not trainable) runs the network's body (up
    /// to the global pooling) in chunks of `evaluationChunk(largestBuffer:images:)` images,
    /// one tape pass per chunk, and its head (feature mix and classifier) once on the
    /// whole batch's pooled features: each image's logits depend on that image alone, so
    /// the result is the same up to the GEMMs' rounding (which depends on their row
    /// count); at 224 px a batch of 256 (estimate-acc's) no longer streams every layer's
    /// gigabyte through memory, and the head's weights (16 MB for A0) are packed once per
    /// batch, not once per chunk. Calibration and training passes need the whole
    /// batch's statistics.
    public func forward<G: RandomNumberGenerator>(
        arch: Arch, input: UnsafeBufferPointer<Float>, shape inShape: Shape4,
        normalization: NormalizationMode, trainable: Bool,
        regularization: Regularization = .none, random: inout G
    ) -> [Float] {
        precondition(inShape.c == 3 && inShape.h == inShape.w, "input must be square NHWC with 3 channels")
        precondition(input.count >= inShape.count)
        tape = plan(arch: arch, inShape: inShape, normalization: normalization, trainable: trainable, regularization: regularization)
        let chunk = normalization == .runningStatistics && !trainable
            ? evaluationChunk(largestBuffer: tape.largestBuffer, images: inShape.n) : inShape.n
        guard chunk < inShape.n else { return forwardPass(arch: arch, input: input, shape: inShape, random: &random) }
        let features = arch.finalExpandChannels
        var pooled: [Float] = []
        pooled.reserveCapacity(inShape.n * features)
        var start = 0
        tape = Tape()
        while start < inShape.n {
            let n = min(chunk, inShape.n - start), shape = Shape4(n: n, h: inShape.h, w: inShape.w, c: inShape.c)
            if tape.input.count != shape.count {
                tape = plan(arch: arch, inShape: shape, normalization: normalization, trainable: false, regularization: regularization,
                            part: .body)
            }
            let images = UnsafeBufferPointer(rebasing: input[(start * inShape.sampleCount)..<((start + n) * inShape.sampleCount)])
            pooled += forwardPass(arch: arch, input: images, shape: shape, random: &random)
            start += n
        }
        let pooledShape = Shape4(n: inShape.n, h: 1, w: 1, c: features)
        tape = plan(arch: arch, inShape: pooledShape, normalization: normalization, trainable: false, regularization: regularization,
                    part: .head)
        return pooled.withUnsafeBufferPointer { forwardPass(arch: arch, input: $0, shape: pooledShape, random: &random) }
    }

    /// Images per evaluation chunk for a tape whose largest buffer holds `largestBuffer`
    /// floats for `images` images: as many as keep that buffer within
    /// `evaluationChunkFloats`, at least 1, at most `images`.
    func evaluationChunk(largestBuffer: Int, images: Int) -> Int {
        let perImage = max(1, largestBuffer / max(1, images))
        return min(images, max(1, evaluationChunkFloats / perImage))
    }

    /// One pass of the tape planned for `inShape` (in `tape`) over `input`.
    private func forwardPass<G: RandomNumberGenerator>(
        arch: Arch, input: UnsafeBufferPointer<Float>, shape inShape: Shape4, random: inout G
    ) -> [Float] {
        mixWeights(for: arch, regions: tape.parameterRegions)
        arena.reserve(values: tape.size, grads: tape.gradSize, scratch: tape.largestBuffer, context: context)
        let v = arena.values
        for i in 0..<inShape.count { v[tape.input.offset + i] = input[i] }
        if let profile {
            executeTape(random: &random) { i, run in
                let t0 = DispatchTime.now().uptimeNanoseconds
                run()
                profile.record(tape.ops[i].kind, forward: true, nanoseconds: DispatchTime.now().uptimeNanoseconds - t0)
            }
        } else {
            executeTape(random: &random) { _, run in run() }
        }
        return Array(UnsafeMutableBufferPointer(rebasing: v[tape.logits.offset..<(tape.logits.offset + tape.logits.count)]))
    }

    // MARK: Planning

    func plan(arch: Arch, inShape: Shape4, normalization: NormalizationMode, trainable: Bool, regularization: Regularization,
              part: TapePart = .whole) -> Tape {
        precondition(part == .whole || !trainable, "plan: only a whole tape can be trainable")
        var t = Tape()
        t.trainable = trainable
        t.normalization = normalization
        var p = ArenaPlanner(reuse: !trainable)
        let n = inShape.n
        var x = p.alloc(inShape.count)
        t.input = x
        var xs = inShape
        let r = arch.resolution
        if part != .head && inShape.h != r {
            let ys = Shape4(n: n, h: r, w: r, c: 3)
            let y = p.alloc(ys.count)
            t.ops.append(.resize(ResizeStep(x: x, xs: xs, y: y, ys: ys)))
            p.release([x])
            x = y
            xs = ys
        }
        let training = trainable || normalization != .runningStatistics

        // BN and the activation after it (if any) run as one pass. Without a backward
        // pass the input is not needed afterwards, so it runs in place; in training the BN
        // output is not kept either (the backward recomputes it from x).
        func bn(_ prefix: String, _ x: Buf, _ xs: Shape4, _ a: Activation?) -> Buf {
            let y = trainable ? p.alloc(xs.count) : x
            let m = p.alloc(xs.c), s = p.alloc(xs.c)
            t.ops.append(.batchNorm(BatchNormStep(
                gamma: TensorRef(entry("\(prefix).bn.bn.weight")), beta: TensorRef(entry("\(prefix).bn.bn.bias")),
                mean: TensorRef(entry("\(prefix).bn.bn.running_mean")), variance: TensorRef(entry("\(prefix).bn.bn.running_var")),
                xs: xs, x: x, y: y, saveMean: m, saveInvStd: s, activation: a ?? .identity)))
            if !trainable { p.release([m, s]) }
            return y
        }
        func act(_ a: Activation, _ x: Buf) -> Buf {
            let y = p.alloc(x.count)
            t.ops.append(.activation(a, x: x, y: y))
            return y
        }
        func activation(_ name: String) -> Activation {
            Activation(officialName: name) ?? .swish
        }

        let expand = arch.finalExpandChannels
        let pooled: Buf
        if part == .head {
            precondition(inShape.h == 1 && inShape.w == 1 && inShape.c == expand,
                         "plan: a head tape takes the pooled features [n, 1, 1, \(expand)], not \(inShape)")
            pooled = x
        } else {
            // Stem: 3x3 conv, BN, activation.
            let c0 = arch.width[0]
            let stemW = entry("first_conv.conv.conv.weight")
            let stemSlice = ConvWeightSlice(outMax: stemW.shape[0], inMax: 3, kMax: 3, cout: c0, cin: 3, k: 3)
            let stemShape = Conv2D.outputShape(xs, slice: stemSlice, stride: space.firstConv.stride)
            var y = p.alloc(stemShape.count)
            t.ops.append(.conv(ConvStep(w: TensorRef(stemW), slice: stemSlice, stride: space.firstConv.stride, x: x, xs: xs, y: y)))
            p.release([x])
            x = bn("first_conv", y, stemShape, activation(space.firstConv.activation))
            xs = stemShape

            // MBConv blocks.
            t.segmentStarts.append(t.ops.count)
            let totalBlocks = layout.blocks.count
            let lastTwo = Set(layout.blocks.indices.filter { layout.blocks[$0].stage >= space.stages.count - 2 })
            for b in arch.blocks(in: space) {
                let dims = layout.blocks[b.index]
                let pre = dims.prefix + ".mobile_inverted_conv"
                let a = activation(space.stages[b.stage].activation)
                var local: [Buf] = []
                var h = x
                var hs = xs
                if b.hasExpand {
                    let w = entry("\(pre).inverted_bottleneck.conv.conv.weight")
                    let slice = ConvWeightSlice(outMax: dims.midMax, inMax: dims.inMax, cout: b.midChannels, cin: b.inChannels)
                    let os = xs.with(c: b.midChannels)
                    let o = p.alloc(os.count)
                    t.ops.append(.pointwise(PointwiseStep(w: TensorRef(w), slice: slice, bias: nil, x: h, xs: hs, y: o)))
                    h = bn("\(pre).inverted_bottleneck", o, os, a)
                    hs = os
                    local += [o, h]
                }
                let mid = hs.c
                let dwW = entry("\(pre).depth_conv.conv.conv.weight")
                let dwSlice = DepthwiseConv.slice(cMax: dims.midMax, kMax: dims.kernelMax, c: mid, k: b.kernel)
                let ds = DepthwiseConv.outputShape(hs, kernel: b.kernel, stride: b.stride)
                let d = p.alloc(ds.count)
                t.ops.append(.depthwise(ConvStep(w: TensorRef(dwW), slice: dwSlice, stride: b.stride, x: h, xs: hs, y: d)))
                var g = bn("\(pre).depth_conv", d, ds, a)
                local += [d, g]
                if let seMax = dims.seMax, let se = b.seChannels {
                    let o = p.alloc(ds.count)
                    let saved = p.alloc(SqueezeExcite.savedCount(n: n, c: mid, mid: se))
                    t.ops.append(.squeezeExcite(SqueezeExciteStep(
                        reduceW: TensorRef(entry("\(pre).depth_conv.se.fc.reduce.weight")), reduceB: TensorRef(entry("\(pre).depth_conv.se.fc.reduce.bias")),
                        expandW: TensorRef(entry("\(pre).depth_conv.se.fc.expand.weight")), expandB: TensorRef(entry("\(pre).depth_conv.se.fc.expand.bias")),
                        cMax: dims.midMax, midMax: seMax, mid: se, xs: ds, x: g, y: o, saved: saved)))
                    g = o
                    local += [o, saved]
                }
                let plW = entry("\(pre).point_linear.conv.conv.weight")
                let plSlice = ConvWeightSlice(outMax: dims.outMax, inMax: dims.midMax, cout: b.outChannels, cin: mid)
                let os = ds.with(c: b.outChannels)
                let o = p.alloc(os.count)
                t.ops.append(.pointwise(PointwiseStep(w: TensorRef(plW), slice: plSlice, bias: nil, x: g, xs: ds, y: o)))
                var main = bn("\(pre).point_linear", o, os, nil)
                local += [o, main]
                // Shortcut: identity, or average pooling for a stride, then a 1x1 conv for a channel change.
                var sc = x
                if b.stride > 1 {
                    let ps = ShortcutAvgPool.outputShape(xs)
                    let q = p.alloc(ps.count)
                    t.ops.append(.avgPool(xs: xs, x: sc, y: q))
                    sc = q
                    local.append(q)
                }
                if b.inChannels != b.outChannels {
                    let scW = entry("\(dims.prefix).shortcut.conv.conv.weight")
                    let slice = ConvWeightSlice(outMax: dims.outMax, inMax: dims.inMax, cout: b.outChannels, cin: b.inChannels)
                    let q = p.alloc(os.count)
                    t.ops.append(.pointwise(PointwiseStep(w: TensorRef(scW), slice: slice, bias: nil, x: sc, xs: os.with(c: b.inChannels), y: q)))
                    sc = q
                    local.append(q)
                }
                // Drop-connect, official: only where the shortcut is an identity.
                var rate = regularization.dropConnect * Float(b.index) / Float(totalBlocks)
                if regularization.dropConnectOnlyLastTwoStages && !lastTwo.contains(b.index) { rate = 0 }
                if trainable, rate > 0, b.inChannels == b.outChannels, b.stride == 1 {
                    let q = p.alloc(os.count)
                    let f = p.alloc(n)
                    t.ops.append(.dropConnect(DropConnectStep(p: rate, xs: os, x: main, y: q, factors: f)))
                    main = q
                    local += [q, f]
                }
                y = p.alloc(os.count)
                t.ops.append(.add(a: main, b: sc, y: y))
                p.release(local + [x])
                x = y
                xs = os
                t.segmentStarts.append(t.ops.count)
            }

            // Head: final expand 1x1 + BN + act, global pooling (the body ends here), then
            // feature mix 1x1 + act, dropout, classifier.
            let cLast = xs.c
            let fe = entry("last_conv.final_expand_layer.conv.conv.weight")
            let es = xs.with(c: expand)
            let e = p.alloc(es.count)
            t.ops.append(.pointwise(PointwiseStep(w: TensorRef(fe), slice: ConvWeightSlice(outMax: fe.shape[0], inMax: fe.shape[1], cout: expand, cin: cLast), bias: nil, x: x, xs: xs, y: e)))
            let ea = bn("last_conv.final_expand_layer", e, es, activation(space.lastConv.activation))
            let pool = p.alloc(n * expand)
            t.ops.append(.globalPool(xs: es, x: ea, y: pool))
            p.release([x, e, ea])
            pooled = pool
        }
        if part == .body {
            t.logits = pooled
            t.size = p.size
            t.largestBuffer = p.maxCount
            return t
        }
        let fm = entry("last_conv.feature_mix_layer.conv.conv.weight")
        let features = arch.width[8]
        let f = p.alloc(n * features)
        t.ops.append(.linear(LinearStep(w: TensorRef(fm), inMax: fm.shape[1], outFeatures: features, bias: nil, n: n, inFeatures: expand, x: pooled, y: f)))
        var fa = act(activation(space.lastConv.activation), f)
        if trainable && regularization.dropout > 0 && training {
            let q = p.alloc(fa.count)
            let mask = p.alloc(fa.count)
            t.ops.append(.dropout(DropoutStep(p: regularization.dropout, x: fa, y: q, mask: mask)))
            fa = q
        }
        let cw = entry("classifier.linear.linear.weight")
        let logits = p.alloc(n * space.nClasses)
        t.ops.append(.linear(LinearStep(w: TensorRef(cw), inMax: cw.shape[1], outFeatures: space.nClasses, bias: TensorRef(entry("classifier.linear.linear.bias")), n: n, inFeatures: features, x: fa, y: logits)))
        t.logits = logits
        t.size = p.size
        t.largestBuffer = p.maxCount
        if trainable { t.planGradients(buffers: p.nextID) }
        return t
    }

    // MARK: Execution

    @inline(__always) func value(_ b: Buf) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: arena.values[b.offset..<(b.offset + b.count)])
    }

    @inline(__always) func ro(_ b: Buf) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(value(b)) }

    @inline(__always) func weight(_ r: TensorRef) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(rebasing: parameters[r.offset..<(r.offset + r.count)])
    }

    @inline(__always) func running(_ r: TensorRef) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: buffers[r.offset..<(r.offset + r.count)])
    }

    /// Runs the tape's ops in order, each through `around(index, run)`. On an evaluation
    /// tape (running statistics, no backward) a BatchNorm that directly follows a
    /// convolution and normalises its output is not a pass of its own: the convolution
    /// applies it, with its activation, to each block of output while that block is in
    /// cache (`ChannelAffine`; equal to the separate pass up to the tiled 1x1 GEMMs'
    /// rounding, within 1e-5 of the logits' scale in the tests). `around` then sees the
    /// convolution's index only, and the pair's time under the convolution's kind.
    func executeTape<G: RandomNumberGenerator>(random: inout G, _ around: (Int, () -> Void) -> Void) {
        let fuse = fusesNormalization && tape.normalization == .runningStatistics && !tape.trainable
        var i = 0
        while i < tape.ops.count {
            let op = tape.ops[i]
            if fuse, i + 1 < tape.ops.count, case let .batchNorm(bn) = tape.ops[i + 1], let x = op.convolutionOutput, bn.x == x {
                around(i) { executeFused(op, normalization: bn) }
                i += 2
                continue
            }
            around(i) { execute(op, random: &random) }
            i += 1
        }
    }

    /// The convolution `op` (stem, depthwise or 1x1) with the evaluation-mode BatchNorm
    /// `bn` (and its activation) as its epilogue.
    private func executeFused(_ op: Op, normalization bn: BatchNormStep) {
        let ctx = context, c = bn.xs.c
        let epilogue = ChannelAffine(
            batchNormGamma: UnsafeBufferPointer(rebasing: weight(bn.gamma)[0..<c]), beta: UnsafeBufferPointer(rebasing: weight(bn.beta)[0..<c]),
            runningMean: UnsafeBufferPointer(rebasing: running(bn.mean)[0..<c]), runningVar: UnsafeBufferPointer(rebasing: running(bn.variance)[0..<c]),
            channels: c, activation: bn.activation)
        switch op {
        case let .conv(op):
            Conv2D.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride, epilogue: epilogue, y: value(bn.y))
        case let .pointwise(op):
            PointwiseConv.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, bias: op.bias.map { weight($0) },
                                  epilogue: epilogue, y: value(bn.y))
        case let .depthwise(op):
            DepthwiseConv.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride, epilogue: epilogue, y: value(bn.y))
        default:
            preconditionFailure("executeFused: \(op.kind) is not a convolution")
        }
    }

    func execute<G: RandomNumberGenerator>(_ op: Op, random: inout G) {
        let ctx = context
        switch op {
        case let .resize(op):
            Bicubic.forward(ctx, x: ro(op.x), shape: op.xs, outHeight: op.ys.h, outWidth: op.ys.w, y: value(op.y))
        case let .conv(op):
            Conv2D.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride, y: value(op.y))
        case let .pointwise(op):
            PointwiseConv.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, bias: op.bias.map { weight($0) }, y: value(op.y))
        case let .depthwise(op):
            DepthwiseConv.forward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride, y: value(op.y))
        case let .batchNorm(op):
            let c = op.xs.c
            let g = UnsafeBufferPointer(rebasing: weight(op.gamma)[0..<c]), b = UnsafeBufferPointer(rebasing: weight(op.beta)[0..<c])
            let rm = UnsafeMutableBufferPointer(rebasing: running(op.mean)[0..<c]), rv = UnsafeMutableBufferPointer(rebasing: running(op.variance)[0..<c])
            switch tape.normalization {
            case .runningStatistics:
                BatchNorm.forwardInference(ctx, x: ro(op.x), shape: op.xs, gamma: g, beta: b, runningMean: UnsafeBufferPointer(rm), runningVar: UnsafeBufferPointer(rv), y: value(op.y), activation: op.activation)
            case .batchStatistics:
                let m = Float(space.bnMomentum)
                let update = m > 0 ? BatchNorm.RunningUpdate(mean: rm, variance: rv, factor: m) : nil
                BatchNorm.forwardTraining(ctx, x: ro(op.x), shape: op.xs, gamma: g, beta: b, y: value(op.y), saveMean: value(op.saveMean), saveInvStd: value(op.saveInvStd), running: update, activation: op.activation,
                                          sync: batchStatisticsSync)
            case let .calibration(index):
                let update = BatchNorm.RunningUpdate(mean: rm, variance: rv, factor: 1 / Float(max(1, index)))
                BatchNorm.forwardTraining(ctx, x: ro(op.x), shape: op.xs, gamma: g, beta: b, y: value(op.y), saveMean: value(op.saveMean), saveInvStd: value(op.saveInvStd), running: update, activation: op.activation)
            }
        case let .activation(a, x, y):
            a.forward(ctx, x: ro(x), y: value(y), count: x.count)
        case let .squeezeExcite(op):
            let pr = SqueezeExcite.Parameters(reduceWeight: weight(op.reduceW), reduceBias: weight(op.reduceB), expandWeight: weight(op.expandW), expandBias: weight(op.expandB), cMax: op.cMax, midMax: op.midMax)
            SqueezeExcite.forward(ctx, x: ro(op.x), shape: op.xs, mid: op.mid, parameters: pr, saved: value(op.saved), y: value(op.y))
        case let .dropConnect(op):
            DropConnect.forward(ctx, x: ro(op.x), shape: op.xs, y: value(op.y), factors: value(op.factors), p: op.p, rng: &random)
        case let .avgPool(xs, x, y):
            ShortcutAvgPool.forward(ctx, x: ro(x), shape: xs, y: value(y))
        case let .add(a, b, y):
            Elementwise.add(ctx, ro(a), ro(b), into: value(y), count: y.count)
        case let .globalPool(xs, x, y):
            GlobalAvgPool.forward(ctx, x: ro(x), shape: xs, y: value(y))
        case let .linear(op):
            Linear.forward(ctx, x: ro(op.x), n: op.n, inFeatures: op.inFeatures, weight: weight(op.w), outFeatures: op.outFeatures, inMax: op.inMax, bias: op.bias.map { weight($0) }, y: value(op.y))
        case let .dropout(op):
            Dropout.forward(x: ro(op.x), y: value(op.y), mask: value(op.mask), count: op.x.count, p: op.p, rng: &random)
        }
    }
}

extension Op {
    /// The output of a convolution (stem, depthwise, 1x1); nil for every other op.
    var convolutionOutput: Buf? {
        switch self {
        case let .conv(op), let .depthwise(op): return op.y
        case let .pointwise(op): return op.y
        default: return nil
        }
    }

    /// The buffers whose gradients the op's backward writes, and the buffer whose
    /// gradient it reads (its output).
    var gradientFlow: (inputs: [Buf], output: Buf?) {
        switch self {
        case .resize: return ([], nil)
        case let .conv(op): return ([], op.y)  // the stem's input is the image
        case let .pointwise(op): return ([op.x], op.y)
        case let .depthwise(op): return ([op.x], op.y)
        case let .batchNorm(op): return ([op.x], op.y)
        case let .activation(_, x, y): return ([x], y)
        case let .squeezeExcite(op): return ([op.x], op.y)
        case let .dropConnect(op): return ([op.x], op.y)
        case let .avgPool(_, x, y), let .globalPool(_, x, y): return ([x], y)
        case let .add(a, b, y): return ([a, b], y)
        case let .linear(op): return ([op.x], op.y)
        case let .dropout(op): return ([op.x], op.y)
        }
    }
}

extension Tape {
    /// Lays out the gradient arena by liveness in backward order: the gradient
    /// of a buffer lives from the first backward op that writes it (the last
    /// reader in forward order) to the backward op of its producer, after which
    /// its region is reused. An op's input gradients are placed while its output
    /// gradient is still live, so `dx` never overlaps `dy`. The gradient arena is
    /// then a small fraction of the activation arena instead of its full size.
    mutating func planGradients(buffers: Int) {
        var p = ArenaPlanner(reuse: true)
        var offsets = [Int](repeating: -1, count: buffers)
        offsets[logits.id] = p.alloc(logits.count).offset
        for op in ops.reversed() {
            let flow = op.gradientFlow
            for x in flow.inputs where offsets[x.id] < 0 { offsets[x.id] = p.alloc(x.count).offset }
            if let y = flow.output, offsets[y.id] >= 0 { p.release([Buf(id: y.id, offset: offsets[y.id], count: y.count)]) }
        }
        gradOffset = offsets
        gradSize = p.size
    }

    /// The part of each parameter tensor the pass reads (its offset and the used slice
    /// of its full shape; a vector is `[outMax, 1]`), one entry per use.
    var parameterRegions: [(offset: Int, region: ConvWeightSlice)] {
        func vector(_ r: TensorRef, _ c: Int) -> (Int, ConvWeightSlice) { (r.offset, ConvWeightSlice(outMax: r.count, inMax: 1, cout: c, cin: 1)) }
        var out: [(offset: Int, region: ConvWeightSlice)] = []
        for op in ops {
            switch op {
            case let .conv(op), let .depthwise(op): out.append((op.w.offset, op.slice))
            case let .pointwise(op):
                out.append((op.w.offset, op.slice))
                if let bias = op.bias { out.append(vector(bias, op.slice.cout)) }
            case let .batchNorm(op): out += [vector(op.gamma, op.xs.c), vector(op.beta, op.xs.c)]
            case let .squeezeExcite(op):
                let c = op.xs.c
                out += [(op.reduceW.offset, ConvWeightSlice(outMax: op.midMax, inMax: op.cMax, cout: op.mid, cin: c)), vector(op.reduceB, op.mid),
                        (op.expandW.offset, ConvWeightSlice(outMax: op.cMax, inMax: op.midMax, cout: c, cin: op.mid)), vector(op.expandB, c)]
            case let .linear(op):
                out.append((op.w.offset, ConvWeightSlice(outMax: op.w.count / op.inMax, inMax: op.inMax, cout: op.outFeatures, cin: op.inFeatures)))
                if let bias = op.bias { out.append(vector(bias, op.outFeatures)) }
            default: break
            }
        }
        return out
    }

    /// Offsets of every parameter tensor the recorded ops read (they receive
    /// a gradient in backward, possibly zero outside the used slice), one per use.
    var parameterOffsets: [Int] { parameterRegions.map(\.offset) }
}
