import NASCore

/// K-shot supernets: before a subnet runs, the official tensors it reads receive the
/// mix `sum_k lambda_k W_k` of their copies under the subnet's simplex codes (one pass
/// over each used tensor's copies, skipped when that subnet's mix is already there);
/// after its backward pass the mixed tensors' gradients go to the copies and to the
/// codes, and through the codes to the simplex-net. A plain supernet (K = 1) runs none
/// of this.
extension Supernet {
    /// The simplex codes of the subnet whose mix the official tensors hold (nil: none yet,
    /// or not K-shot).
    public var currentCodes: SimplexCodes? { kshotCodes?.codes }

    /// The copies or the simplex-net were changed (an optimizer step, a restored state):
    /// the next forward pass recomputes the codes and remixes.
    public func parametersChanged() {
        kshotCodes = nil
        mixGeneration += 1
    }

    /// Makes the official tensors hold `arch`'s mixed weights (all of them, whole, for
    /// readers of `parameters` or `weights`: export, static subnets). A no-op when not K-shot.
    public func prepareWeights(for arch: Arch) {
        mixWeights(for: arch, regions: nil)
    }

    /// Mixes, for `arch`, the used region of each shared tensor among `regions` (nil: every
    /// shared tensor, whole). A tensor whose region of the current codes is already mixed
    /// is skipped; otherwise the region covering both (the larger of each dimension) is mixed.
    func mixWeights(for arch: Arch, regions: [(offset: Int, region: ConvWeightSlice)]?) {
        guard let k = layout.kshot else { return }
        if kshotCodes?.arch != arch {
            let codes = SimplexNet.codes(for: arch, in: space, layout: k, parameters: UnsafeBufferPointer(parameters))
            kshotCodes = (arch, codes)
            mixGeneration += 1
        }
        guard let codes = kshotCodes?.codes.codes else { return }
        let generation = mixGeneration
        var wanted: [Int: ConvWeightSlice] = [:]
        if let regions {
            for (offset, r) in regions {
                guard let i = k.sharedIndex[offset] else { continue }
                wanted[i] = wanted[i].map { $0.covering(r) } ?? r
            }
        } else {
            for (i, s) in k.shared.enumerated() { wanted[i] = KShotLayout.fullSlice(s.official) }
        }
        var todo: [(index: Int, region: ConvWeightSlice)] = []
        for (i, r) in wanted {
            if mixedInGeneration[i] == generation, let done = mixedRegion[i], done.covers(r) { continue }
            let region = mixedInGeneration[i] == generation ? (mixedRegion[i].map { $0.covering(r) } ?? r) : r
            todo.append((i, region))
        }
        guard !todo.isEmpty else { return }
        let base = UnsafePointer(parameters.baseAddress!)
        let kk = k.config.copies
        codes.withUnsafeBufferPointer { c in
            // Tensors are independent: spread them over the workers, largest first.
            let order = todo.sorted { $0.region.count > $1.region.count }
            context.parallel(min(context.workers, order.count)) { w in
                var i = w
                while i < order.count {
                    let s = k.shared[order[i].index]
                    let out = parameters.baseAddress! + s.official.offset
                    order[i].region.forEachRun { start, length in
                        WeightMixing.mix(base + start, copyOffsets: s.copyOffsets, codes: c.baseAddress! + s.group * kk,
                                         into: out + start, count: length)
                    }
                    i += context.workers
                }
            }
        }
        for (i, r) in todo {
            mixedInGeneration[i] = generation
            mixedRegion[i] = r
        }
    }

    /// After a backward pass of a K-shot supernet: moves the gradients of the mixed
    /// tensors the pass used (their used regions: the rest of each gradient is zero) into
    /// their copies (`lambda_k dW`), and, when the simplex-net is trained, the codes'
    /// gradients (`<dW, W_k>`) into the simplex-net. The mixed tensors' gradients are left
    /// at zero.
    func distributeKShotGradients() {
        guard let k = layout.kshot, let codes = kshotCodes?.codes else { return }
        let kk = k.config.copies
        var regions: [Int: ConvWeightSlice] = [:]
        for (offset, r) in tape.parameterRegions {
            guard let i = k.sharedIndex[offset] else { continue }
            regions[i] = regions[i].map { $0.covering(r) } ?? r
        }
        // Largest first, round-robin over the workers; the code gradients are summed per
        // tensor, then in this fixed order.
        let used = regions.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }.map { ($0.key, $0.value) }
        var partial = [Double](repeating: 0, count: used.count * kk)
        let base = UnsafePointer(parameters.baseAddress!), gradBase = gradients.baseAddress!
        codes.codes.withUnsafeBufferPointer { c in
            partial.withUnsafeMutableBufferPointer { dc in
                let dcBase = dc.baseAddress!
                context.parallel(min(context.workers, used.count)) { w in
                    var i = w
                    while i < used.count {
                        let s = k.shared[used[i].0]
                        let g = gradBase + s.official.offset
                        used[i].1.forEachRun { start, length in
                            WeightMixing.distribute(UnsafePointer(g + start), base: base + start, gradBase: gradBase + start, copyOffsets: s.copyOffsets,
                                                    codes: c.baseAddress! + s.group * kk, count: length,
                                                    codeGradient: trainsSimplexNet ? dcBase + i * kk : nil)
                            (g + start).update(repeating: 0, count: length)
                        }
                        i += context.workers
                    }
                }
            }
        }
        guard trainsSimplexNet else { return }
        var codeGradient = [Double](repeating: 0, count: k.groups * kk)
        for (i, u) in used.enumerated() {
            let g = k.shared[u.0].group
            for j in 0..<kk { codeGradient[g * kk + j] += partial[i * kk + j] }
        }
        SimplexNet.backward(codes, codeGradient: codeGradient, layout: k, parameters: UnsafeBufferPointer(parameters), gradients: gradients)
    }
}

extension SupernetWeights {
    /// The plain (K = 1) weights of the official layout that `arch` runs with: the
    /// K-shot tensors mixed by its codes, every other tensor as it is. Weights that are
    /// not K-shot are returned unchanged.
    public func materialised(for arch: Arch, in space: SearchSpace) -> SupernetWeights {
        guard let k = layout.kshot else { return self }
        var out = SupernetWeights(layout: SupernetLayout(space: space))
        out.parameters = Array(parameters.prefix(layout.officialParameterCount))
        out.buffers = buffers
        out.batchesTracked = batchesTracked
        parameters.withUnsafeBufferPointer { p in
            let codes = SimplexNet.codes(for: arch, in: space, layout: k, parameters: p)
            out.parameters.withUnsafeMutableBufferPointer { o in
                codes.codes.withUnsafeBufferPointer { c in
                    for s in k.shared {
                        WeightMixing.mix(p.baseAddress!, copyOffsets: s.copyOffsets, codes: c.baseAddress! + s.group * k.config.copies,
                                         into: o.baseAddress! + s.official.offset, count: s.official.count)
                    }
                }
            }
        }
        return out
    }
}
