import FileFormats
import Foundation
import NASCore
import Supernet
import System
import Testing
import TestSupport

/// K-shot supernets: the mixing kernels against plain loops, the supernet with K equal
/// copies against the plain one, every gradient against finite differences, the codes
/// on the simplex for any subnet, and the checkpoint round trip.
@Suite struct KShotTests {
    func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var r = SeededRandom(seed: seed)
        return (0..<n).map { _ in (r.uniformFloat() * 2 - 1) * scale }
    }

    /// K copies laid out at strided offsets of one buffer, as the supernet keeps them.
    func packed(_ copies: [[Float]], gap: Int = 5) -> (buffer: [Float], offsets: [Int]) {
        var buffer: [Float] = [], offsets: [Int] = []
        for c in copies {
            buffer += [Float](repeating: 9, count: gap)
            offsets.append(buffer.count)
            buffer += c
        }
        return (buffer, offsets)
    }

    /// Sizes with SIMD tails and a flush at 1024; K = 3 (one copy per pass), 4 (four per
    /// pass) and 6 (four, then two single ones).
    @Test(arguments: [1, 7, 8, 37, 2051], [3, 4, 6])
    func mixAndDistributeMatchPlainLoops(count: Int, k: Int) {
        let copies = (0..<k).map { values(count, seed: UInt64(10 + $0)) }
        let raw = (0..<k).map { Float($0 + 1) }
        let codes = raw.map { $0 / raw.reduce(0, +) }
        let (buffer, offsets) = packed(copies)
        var out = [Float](repeating: .nan, count: count)
        buffer.withUnsafeBufferPointer { b in
            codes.withUnsafeBufferPointer { c in
                out.withUnsafeMutableBufferPointer { WeightMixing.mix(b.baseAddress!, copyOffsets: offsets, codes: c.baseAddress!, into: $0.baseAddress!, count: count) }
            }
        }
        #expect(out == WeightMixing.mixNaive(copies, codes: codes))

        let g = values(count, seed: 99)
        var grads = [Float](repeating: 0, count: buffer.count)
        var dc = [Double](repeating: 0.5, count: k)  // added into
        buffer.withUnsafeBufferPointer { b in
            codes.withUnsafeBufferPointer { c in
                g.withUnsafeBufferPointer { gp in
                    grads.withUnsafeMutableBufferPointer { gr in
                        dc.withUnsafeMutableBufferPointer {
                            WeightMixing.distribute(gp.baseAddress!, base: b.baseAddress!, gradBase: gr.baseAddress!, copyOffsets: offsets,
                                                    codes: c.baseAddress!, count: count, codeGradient: $0.baseAddress!)
                        }
                    }
                }
            }
        }
        let naive = WeightMixing.distributeNaive(g, copies: copies, codes: codes)
        for j in 0..<k {
            #expect(Array(grads[offsets[j]..<(offsets[j] + count)]) == naive.copyGradients[j])
            let scale = max(1, g.map { abs(Double($0)) }.reduce(0, +))
            #expect(abs(dc[j] - 0.5 - naive.codeGradient[j]) <= 1e-6 * scale, "code \(j): \(dc[j] - 0.5) vs \(naive.codeGradient[j])")
        }
        // Outside the copies nothing was written.
        #expect(grads.indices.filter { i in !offsets.contains { $0 <= i && i < $0 + count } }.allSatisfy { grads[$0] == 0 })
        // Without code gradients: the same copy gradients.
        var plain = [Float](repeating: 0, count: buffer.count)
        buffer.withUnsafeBufferPointer { b in
            codes.withUnsafeBufferPointer { c in
                g.withUnsafeBufferPointer { gp in
                    plain.withUnsafeMutableBufferPointer { gr in
                        WeightMixing.distribute(gp.baseAddress!, base: b.baseAddress!, gradBase: gr.baseAddress!, copyOffsets: offsets,
                                                codes: c.baseAddress!, count: count, codeGradient: nil)
                    }
                }
            }
        }
        #expect(plain == grads)
    }

    /// The runs of a weight slice are exactly its elements, in increasing order, for
    /// whole weights, whole kernels with fewer inputs, and kernel centres.
    @Test func sliceRunsCoverExactlyTheSlice() {
        for s in [ConvWeightSlice(full: 6, 5, kernel: 3), ConvWeightSlice(outMax: 6, inMax: 5, kMax: 3, cout: 4, cin: 5, k: 3),
                  ConvWeightSlice(outMax: 6, inMax: 5, kMax: 3, cout: 4, cin: 2, k: 3), ConvWeightSlice(outMax: 6, inMax: 5, kMax: 7, cout: 3, cin: 2, k: 3),
                  ConvWeightSlice(outMax: 8, inMax: 1, kMax: 5, cout: 8, cin: 1, k: 5), ConvWeightSlice(outMax: 9, inMax: 1, cout: 4, cin: 1)] {
            var seen: [Int] = []
            s.forEachRun { start, length in seen += Array(start..<(start + length)) }
            var expected: [Int] = []
            for o in 0..<s.cout { for i in 0..<s.cin { for kh in 0..<s.k { for kw in 0..<s.k { expected.append(s.index(o, i, kh, kw)) } } } }
            #expect(seen == expected.sorted() && seen.count == s.count, "\(s)")
        }
    }

    @Test func layoutAppendsCopiesAndSimplexNetAfterTheOfficialTensors() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let plain = SupernetLayout(space: space)
        let layout = SupernetLayout(space: space, kshot: KShotConfig(copies: 4))
        let k = try #require(layout.kshot)
        #expect(layout.officialParameterCount == plain.parameterCount)
        #expect(Array(layout.entries.prefix(plain.entries.count)) == plain.entries)
        let shared = plain.entries.filter { $0.role == .convWeight || $0.name.hasPrefix("classifier.") }
        #expect(k.shared.map(\.official) == shared)
        let sharedCount = shared.reduce(0) { $0 + $1.count }
        let simplex = k.simplexEntries.reduce(0) { $0 + $1.count }
        #expect(layout.parameterCount == plain.parameterCount + 4 * sharedCount + simplex)
        #expect(layout["kshot.copies.3.classifier.linear.linear.bias"]?.shape == [space.nClasses])
        #expect(layout["kshot.copies.0.blocks.0.mobile_inverted_conv.depth_conv.conv.conv.weight"] != nil)
        // Groups: first conv, each block, the last conv stage, the classifier.
        #expect(k.groups == plain.blocks.count + 3)
        #expect(k.shared.first?.group == 0 && k.shared.last?.group == k.groups - 1)
        // Encoding: one one-hot block per field.
        let choices = space.resolutions.count + space.widthChoices.joined().count + space.depthChoices.joined().count
            + space.kernelChoices.joined().count + space.expandChoices.joined().count
        #expect(k.encodingSize == choices)
        #expect(k.channelSize == space.widthChoices.joined().count + space.expandChoices.joined().count)
        #expect(layout["kshot.simplex_net.code.weight"]?.shape == [k.groups * 4, KShotConfig.defaultHidden])
    }

    /// K = 4 with four equal copies and the initial (uniform) codes is the plain supernet:
    /// the same logits bit for bit, and each copy receives exactly a quarter of the
    /// plain gradient (every other tensor the same gradient).
    @Test func fourEqualCopiesAreThePlainSupernet() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let plainWeights = SupernetInitializer.initialWeights(space: space, seed: 3)
        var w = SupernetInitializer.initialWeights(space: space, seed: 3, kshot: KShotConfig(copies: 4))
        let k = try #require(w.layout.kshot)
        for s in k.shared {
            for o in s.copyOffsets {
                w.parameters.replaceSubrange(o..<(o + s.official.count), with: plainWeights.parameters[s.official.offset..<(s.official.offset + s.official.count)])
            }
        }
        let ctx = ComputeContext(workers: 2)
        let plain = Supernet(weights: plainWeights, space: space, context: ctx)
        let kshot = Supernet(weights: w, space: space, context: ctx)
        kshot.trainsSimplexNet = true
        let shape = Shape4(n: 4, h: 32, w: 32, c: 3)
        let input = values(shape.count, seed: 5)
        let archs = [space.maxArch, space.minArch, Arch(resolution: 28, width: space.widthChoices.map { $0.last! }, depth: space.depthChoices.map(\.first!),
                                                        kernelSize: space.kernelChoices.map(\.last!), expandRatio: space.expandChoices.map { $0[$0.count / 2] })]
        for arch in archs {
            plain.zeroGradients()
            kshot.zeroGradients()
            var r1 = SeededRandom(seed: 1), r2 = SeededRandom(seed: 1)
            let a = input.withUnsafeBufferPointer { plain.forward(arch: arch, input: $0, shape: shape, normalization: .batchStatistics, trainable: true, random: &r1) }
            let b = input.withUnsafeBufferPointer { kshot.forward(arch: arch, input: $0, shape: shape, normalization: .batchStatistics, trainable: true, random: &r2) }
            #expect(a == b, "logits differ for \(arch)")
            let codes = try #require(kshot.currentCodes?.codes)
            #expect(codes.allSatisfy { $0 == 0.25 })
            let dz = values(a.count, seed: 8)
            dz.withUnsafeBufferPointer { plain.backward(logitsGradient: $0) }
            dz.withUnsafeBufferPointer { kshot.backward(logitsGradient: $0) }
            var differing = 0
            for e in plain.layout.entries where e.role.isParameter {
                let g = Array(plain.gradients[e.offset..<(e.offset + e.count)])
                if let i = k.sharedIndex[e.offset] {
                    #expect(kshot.gradients[e.offset..<(e.offset + e.count)].allSatisfy { $0 == 0 }, "\(e.name): mixed tensor kept a gradient")
                    for o in k.shared[i].copyOffsets where Array(kshot.gradients[o..<(o + e.count)]) != g.map({ $0 * 0.25 }) { differing += 1 }
                } else if Array(kshot.gradients[e.offset..<(e.offset + e.count)]) != g {
                    differing += 1
                }
            }
            #expect(differing == 0, "\(differing) tensors' gradients differ for \(arch)")
            // Equal copies under uniform codes: <dW, W_k> is the same for every k, so the
            // softmax passes no gradient to the simplex-net's code layer.
            let cw = k.codeWeight
            #expect(kshot.gradients[cw.offset..<(cw.offset + cw.count)].allSatisfy { abs($0) < 1e-6 })
            #expect(Set(kshot.usedParameterOffsets).isSuperset(of: k.simplexEntries.map(\.offset)))
        }
    }

    /// A forward pass mixes only the parts of the shared tensors its subnet reads;
    /// `prepareWeights` then mixes them whole: after it, every official tensor equals the
    /// file-side `materialised` mix of that subnet, bit for bit, whatever ran before.
    @Test func regionMixingThenPrepareWeightsGivesTheWholeMix() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        var w = SupernetInitializer.initialWeights(space: space, seed: 4, kshot: KShotConfig(copies: 4))
        let k = try #require(w.layout.kshot)
        // Non-uniform codes: a non-zero code layer.
        for i in 0..<k.codeWeight.count { w.parameters[k.codeWeight.offset + i] = Float((i * 7) % 11) * 0.05 - 0.25 }
        let model = Supernet(weights: w, space: space, context: ComputeContext(workers: 2))
        let shape = Shape4(n: 2, h: 32, w: 32, c: 3)
        let input = values(shape.count, seed: 6)
        for arch in [space.minArch, space.maxArch, space.minArch] {
            var r = SeededRandom(seed: 1)
            _ = input.withUnsafeBufferPointer { model.forward(arch: arch, input: $0, shape: shape, normalization: .batchStatistics, trainable: false, random: &r) }
            model.prepareWeights(for: arch)
            let expected = w.materialised(for: arch, in: space).parameters
            let official = Array(model.parameters.prefix(w.layout.officialParameterCount))
            #expect(official.map(\.bitPattern) == expected.map(\.bitPattern), "official tensors are not the whole mix of \(arch.resolution)")
        }
    }

    /// The gradients of a K-shot supernet's copies and simplex-net, checked against
    /// central finite differences of the loss `<r, logits>` (non-uniform codes, distinct copies).
    @Test func copyAndSimplexNetGradientsMatchFiniteDifferences() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        var w = SupernetInitializer.initialWeights(space: space, seed: 4, kshot: KShotConfig(copies: 3, temperature: 0.3, hidden: 8))
        let k = try #require(w.layout.kshot)
        for e in [k.codeWeight, k.codeBias, k.channelWeight] { w.set(e.name, values(e.count, seed: UInt64(e.offset), scale: 0.3)) }
        // The initial zero BN weight at each residual branch's end would stop its gradients.
        for e in w.layout.entries where e.name.hasSuffix("point_linear.bn.bn.weight") { w.set(e.name, [Float](repeating: 0.5, count: e.count)) }
        let model = Supernet(weights: w, space: space, context: ComputeContext(workers: 2))
        model.trainsSimplexNet = true
        let shape = Shape4(n: 3, h: 24, w: 24, c: 3)
        let input = values(shape.count, seed: 6)
        let arch = Arch(resolution: 24, width: space.widthChoices.map(\.first!), depth: space.depthChoices.map(\.first!),
                        kernelSize: space.kernelChoices.map(\.last!), expandRatio: space.expandChoices.map(\.first!))
        let r = values(shape.n * space.nClasses, seed: 7)
        func loss() -> Double {
            var random = SeededRandom(seed: 0)
            let z = input.withUnsafeBufferPointer { model.forward(arch: arch, input: $0, shape: shape, normalization: .batchStatistics, trainable: true, random: &random) }
            return zip(z, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        model.zeroGradients()
        _ = loss()
        let codes = try #require(model.currentCodes?.codes)
        #expect(Set(codes).count > 3, "codes should not be uniform here")
        r.withUnsafeBufferPointer { model.backward(logitsGradient: $0) }
        let grads = Array(model.gradients)
        // The largest gradients of a few copies and of every simplex-net tensor.
        var checks: [Int] = []
        for name in ["kshot.copies.0.classifier.linear.linear.weight", "kshot.copies.2.first_conv.conv.conv.weight",
                     "kshot.copies.1.blocks.3.mobile_inverted_conv.point_linear.conv.conv.weight"] + k.simplexEntries.map(\.name) {
            let e = try #require(model.layout[name], "\(name)")
            let top = (e.offset..<(e.offset + e.count)).sorted { abs(grads[$0]) > abs(grads[$1]) }.prefix(3)
            #expect(top.first.map { grads[$0] != 0 } ?? false, "\(name) got no gradient")
            checks += top
        }
        var worst = 0.0
        for i in checks {
            let saved = model.parameters[i]
            let eps = max(1e-3, abs(saved) * 1e-2)
            model.parameters[i] = saved + eps
            model.parametersChanged()
            let up = loss()
            model.parameters[i] = saved - eps
            model.parametersChanged()
            let down = loss()
            model.parameters[i] = saved
            model.parametersChanged()
            let fd = (up - down) / (2 * Double(eps))
            let err = abs(fd - Double(grads[i])) / max(abs(fd), 1e-2)
            worst = max(worst, err)
            #expect(err < 2e-2, "parameter \(i): backward \(grads[i]), finite difference \(fd)")
        }
        #expect(worst < 2e-2)
    }

    /// Every subnet's codes lie on the simplex and are finite, whatever the simplex-net's
    /// weights and the temperature (large logits, a resolution outside the choices).
    @Test(arguments: [0.3, 0.01])
    func codesStayOnTheSimplex(temperature: Double) throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        var w = SupernetInitializer.initialWeights(space: space, seed: 1, kshot: KShotConfig(copies: 5, temperature: temperature))
        let k = try #require(w.layout.kshot)
        for e in k.simplexEntries { w.set(e.name, values(e.count, seed: UInt64(e.offset) + 1, scale: 20)) }
        var random = SeededRandom(seed: 2)
        func pick(_ c: [Int]) -> Int { c[Int(random.next() % UInt64(c.count))] }
        var archs = [space.maxArch, space.minArch]
        for i in 0..<300 {
            archs.append(Arch(resolution: i % 50 == 0 ? 40 : pick(space.resolutions), width: space.widthChoices.map(pick), depth: space.depthChoices.map(pick),
                              kernelSize: space.kernelChoices.map(pick), expandRatio: space.expandChoices.map(pick)))
        }
        w.parameters.withUnsafeBufferPointer { p in
            for a in archs {
                let c = SimplexNet.codes(for: a, in: space, layout: k, parameters: p).codes
                #expect(c.count == k.groups * 5)
                for g in 0..<k.groups {
                    let row = c[(g * 5)..<((g + 1) * 5)]
                    #expect(row.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
                    #expect(abs(row.reduce(0, +) - 1) < 1e-5)
                }
            }
        }
    }

    /// A K = 4 checkpoint keeps every copy, the simplex-net and their momentum; its
    /// official tensors hold the max subnet's mix; read back it is the same supernet.
    @Test func checkpointRoundTripKeepsCopiesAndSimplexNet() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        var w = SupernetInitializer.initialWeights(space: space, seed: 9, kshot: KShotConfig(copies: 4, temperature: 0.5))
        let k = try #require(w.layout.kshot)
        for e in [k.codeWeight, k.codeBias] { w.set(e.name, values(e.count, seed: 3, scale: 0.5)) }
        let momentum = values(w.layout.parameterCount, seed: 4)
        let state = TrainingState(momentum: momentum, step: 7, randomState: [1, 2, 3, 4], info: .object([]))
        let file = Checkpoint(space: space, weights: w, training: state).tensorFile()
        #expect(file.metadata["kshot"] == "4" && file.metadata["kshot_temperature"] == "0.5")
        #expect(file["kshot.copies.3.classifier.linear.linear.weight"] != nil && file["kshot.simplex_net.channel.weight"] != nil)
        #expect(file["optimizer.momentum.kshot.copies.1.first_conv.conv.conv.weight"] != nil)
        let mixed = w.materialised(for: space.maxArch, in: space)
        #expect(file["classifier.linear.linear.weight"]?.floats() == mixed.values(of: "classifier.linear.linear.weight"))
        let back = try Checkpoint(file: file)
        #expect(back.kshotCopies == 4 && back.weights.layout.kshot?.config == KShotConfig(copies: 4, temperature: 0.5))
        let official = back.weights.layout.officialParameterCount
        #expect(Array(back.weights.parameters[official...]) == Array(w.parameters[official...]))
        #expect(back.training == state)
        // A copy missing is an error naming it.
        var broken = file
        broken["kshot.copies.2.first_conv.conv.conv.weight"] = nil
        #expect(throws: Failure.self) { try Checkpoint(file: broken) }
    }
}
