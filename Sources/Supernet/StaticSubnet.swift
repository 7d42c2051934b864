import FileFormats
import NASCore

/// The official static subnet of an arch: the `state_dict` of AttentiveNAS
/// `get_active_subnet(preserve_weight=True)`, names, shapes and order, each tensor a
/// slice of a supernet tensor (leading output and input channels, the kernel's centre).
///
/// Names drop the dynamic wrappers (`first_conv.conv.conv.weight` is
/// `first_conv.conv.weight`, `.bn.bn.` is `.bn.`, no `bn_tracking`), the active blocks
/// are numbered 0, 1, ... in order, a block whose expand ratio is 1 has no
/// `inverted_bottleneck`, the head is `last_conv.0` (final expand conv and BN) and
/// `last_conv.2` (feature mix), and every block keeps its shortcut's 1x1 conv (the
/// official ShortcutLayer holds one and applies it only when the channels change).
public struct StaticSubnet: Sendable {
    /// One tensor of the static state_dict and where it comes from.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        /// The supernet tensor it is cut from.
        public var source: LayoutEntry
        /// Which part: `[cout, cin, k, k]` of `[outMax, inMax, kMax, kMax]` (a linear
        /// weight or a vector has `k = 1`, a vector `cin = 1`).
        public var slice: ConvWeightSlice
    }

    public let arch: Arch
    public let entries: [Entry]

    /// - Precondition: `arch` is valid in `space` (its choices, any resolution).
    public init(arch: Arch, space: SearchSpace, layout: SupernetLayout) {
        self.arch = arch
        var out: [Entry] = []
        func entry(_ name: String) -> LayoutEntry {
            guard let e = layout[name] else { preconditionFailure("StaticSubnet: the supernet has no \(name)") }
            return e
        }
        /// A conv or linear weight: the leading `cout` x `cin`, the centre `k` x `k`.
        func weight(_ name: String, _ source: String, cout: Int, cin: Int, k: Int = 1) {
            let e = entry(source)
            let kMax = e.shape.count == 4 ? e.shape[2] : 1
            let slice = ConvWeightSlice(outMax: e.shape[0], inMax: e.shape[1], kMax: kMax, cout: cout, cin: cin, k: k)
            out.append(Entry(name: name, shape: e.shape.count == 4 ? [cout, cin, k, k] : [cout, cin], source: e, slice: slice))
        }
        func vector(_ name: String, _ source: String, _ c: Int) {
            let e = entry(source)
            out.append(Entry(name: name, shape: e.role == .numBatchesTracked ? [] : [c], source: e,
                             slice: ConvWeightSlice(outMax: max(1, e.shape.first ?? 1), inMax: 1, cout: e.role == .numBatchesTracked ? 1 : c, cin: 1)))
        }
        func bn(_ name: String, _ source: String, _ c: Int) {
            for (s, d) in [("weight", "bn.weight"), ("bias", "bn.bias"), ("running_mean", "bn.running_mean"), ("running_var", "bn.running_var"),
                           ("num_batches_tracked", "bn.num_batches_tracked")] {
                vector("\(name).bn.\(s)", "\(source).bn.\(d)", c)
            }
        }
        let c0 = arch.width[0]
        weight("first_conv.conv.weight", "first_conv.conv.conv.weight", cout: c0, cin: 3, k: 3)
        bn("first_conv", "first_conv", c0)
        for (i, b) in arch.blocks(in: space).enumerated() {
            let dims = layout.blocks[b.index]
            let src = dims.prefix + ".mobile_inverted_conv", dst = "blocks.\(i).mobile_inverted_conv"
            if b.hasExpand {
                weight("\(dst).inverted_bottleneck.conv.weight", "\(src).inverted_bottleneck.conv.conv.weight", cout: b.midChannels, cin: b.inChannels)
                bn("\(dst).inverted_bottleneck", "\(src).inverted_bottleneck", b.midChannels)
            }
            let mid = b.hasExpand ? b.midChannels : b.inChannels
            weight("\(dst).depth_conv.conv.weight", "\(src).depth_conv.conv.conv.weight", cout: mid, cin: 1, k: b.kernel)
            bn("\(dst).depth_conv", "\(src).depth_conv", mid)
            if let se = b.seChannels {
                weight("\(dst).depth_conv.se.fc.reduce.weight", "\(src).depth_conv.se.fc.reduce.weight", cout: se, cin: mid)
                vector("\(dst).depth_conv.se.fc.reduce.bias", "\(src).depth_conv.se.fc.reduce.bias", se)
                weight("\(dst).depth_conv.se.fc.expand.weight", "\(src).depth_conv.se.fc.expand.weight", cout: mid, cin: se)
                vector("\(dst).depth_conv.se.fc.expand.bias", "\(src).depth_conv.se.fc.expand.bias", mid)
            }
            weight("\(dst).point_linear.conv.weight", "\(src).point_linear.conv.conv.weight", cout: b.outChannels, cin: mid)
            bn("\(dst).point_linear", "\(src).point_linear", b.outChannels)
            weight("blocks.\(i).shortcut.conv.weight", "\(dims.prefix).shortcut.conv.conv.weight", cout: b.outChannels, cin: b.inChannels)
        }
        let last = arch.width[7], expand = last * 6, features = arch.width[8]
        weight("last_conv.0.conv.weight", "last_conv.final_expand_layer.conv.conv.weight", cout: expand, cin: last)
        bn("last_conv.0", "last_conv.final_expand_layer", expand)
        weight("last_conv.2.conv.weight", "last_conv.feature_mix_layer.conv.conv.weight", cout: features, cin: expand)
        weight("classifier.linear.weight", "classifier.linear.linear.weight", cout: space.nClasses, cin: features)
        vector("classifier.linear.bias", "classifier.linear.linear.bias", space.nClasses)
        entries = out
    }

    /// The static state_dict cut from `weights`: float32 tensors, num_batches_tracked int64.
    public func tensors(from weights: SupernetWeights) -> [(name: String, tensor: Tensor)] {
        entries.map { e in
            if e.source.role == .numBatchesTracked {
                return (e.name, Tensor([weights.batchesTracked[e.source.name] ?? 0], shape: []))
            }
            let store = e.source.role.isParameter ? weights.parameters : weights.buffers
            let s = e.slice
            var values = [Float]()
            values.reserveCapacity(e.shape.reduce(1, *))
            for o in 0..<s.cout {
                for i in 0..<s.cin {
                    for kh in 0..<s.k {
                        for kw in 0..<s.k { values.append(store[e.source.offset + s.index(o, i, kh, kw)]) }
                    }
                }
            }
            return (e.name, Tensor(values, shape: e.shape))
        }
    }

    /// Puts static tensors back into their places in `weights` (the rest unchanged):
    /// the supernet then computes exactly the static subnet's outputs for `arch`.
    /// Every entry must be given with its shape and dtype; a problem names the tensor.
    public func insert(_ file: TensorFile, into weights: inout SupernetWeights) throws(StaticSubnetError) {
        for e in entries {
            guard let t = file[e.name] else { throw StaticSubnetError(tensor: e.name, problem: "is missing") }
            guard t.shape == e.shape else { throw StaticSubnetError(tensor: e.name, problem: "has shape \(t.shape), the arch needs \(e.shape)") }
            if e.source.role == .numBatchesTracked {
                guard t.dtype == .i64, let v = t.ints().first.map(Int64.init) else { throw StaticSubnetError(tensor: e.name, problem: "must be one int64") }
                weights.batchesTracked[e.source.name] = v
                continue
            }
            guard t.dtype == .f32 else { throw StaticSubnetError(tensor: e.name, problem: "must be float32, not \(t.dtype.rawValue)") }
            let values = t.floats()
            guard values.allSatisfy(\.isFinite) else { throw StaticSubnetError(tensor: e.name, problem: "holds NaN or infinity") }
            let s = e.slice
            var j = 0
            for o in 0..<s.cout {
                for i in 0..<s.cin {
                    for kh in 0..<s.k {
                        for kw in 0..<s.k {
                            let at = e.source.offset + s.index(o, i, kh, kw)
                            if e.source.role.isParameter { weights.parameters[at] = values[j] } else { weights.buffers[at] = values[j] }
                            j += 1
                        }
                    }
                }
            }
        }
        let known = Set(entries.map(\.name))
        if let extra = file.names.first(where: { !known.contains($0) }) {
            throw StaticSubnetError(tensor: extra, problem: "is not a tensor of this arch's static subnet")
        }
    }
}

/// A static subnet file that does not fit its arch.
public struct StaticSubnetError: Error, Sendable, CustomStringConvertible {
    public var tensor: String
    public var problem: String
    public var description: String { "tensor '\(tensor)' \(problem)" }
}
