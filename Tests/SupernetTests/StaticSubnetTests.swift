import FileFormats
import Foundation
import NASCore
@testable import Supernet
import Testing
import TestSupport

/// The static subnet against the official `get_active_subnet(preserve_weight=True)`
/// state_dict (../shared/reference/static_subnet_state_dict.json), and its round trip.
@Suite("Static subnet")
struct StaticSubnetTests {
    struct Reference {
        var arch: Arch
        var space: String
        var stateDict: [(String, [Int])]
    }

    static func reference(_ name: String) throws -> Reference {
        let text = try String(contentsOfFile: Paths.reference + "/static_subnet_state_dict.json", encoding: .utf8)
        let json = try JSONValue.parse(text)
        let s = try #require(json["subnets"]?[name])
        let arch = try Arch(json: try #require(s["arch"]))
        let space = try #require(s["space"]?.stringValue).replacingOccurrences(of: ".json", with: "")
        let dict = try #require(s["state_dict"]?.arrayValue).map { e -> (String, [Int]) in
            let pair = e.arrayValue ?? []
            return (pair.first?.stringValue ?? "", (pair.last?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) })
        }
        return Reference(arch: arch, space: space, stateDict: dict)
    }

    @Test(.requires(.referenceData), arguments: ["official_A0", "tiny"])
    func namesShapesAndOrderAreTheOfficialOnes(subnet: String) throws {
        let r = try Self.reference(subnet)
        let space = try SearchSpace(contentsOf: Paths.space(r.space))
        let s = StaticSubnet(arch: r.arch, space: space, layout: SupernetLayout(space: space))
        #expect(s.entries.count == r.stateDict.count)
        for (i, (e, ref)) in zip(s.entries, r.stateDict).enumerated() {
            #expect(e.name == ref.0 && e.shape == ref.1, "entry \(i): ours \(e.name) \(e.shape), official \(ref.0) \(ref.1)")
        }
    }

    /// Cut out and put back into zeros: the same values in the same places, and each
    /// value the supernet element its slice names (checked naively for a few).
    @Test func tensorsRoundTripIntoTheirSlices() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let weights = SupernetInitializer.initialWeights(space: space, seed: 5)
        // A middle arch: kernels 5 where the space allows (centre crops of 5 for 3).
        var middle = space.minArch
        middle.kernelSize = space.maxArch.kernelSize
        middle.depth = space.maxArch.depth
        for arch in [space.minArch, space.maxArch, middle] {
            let s = StaticSubnet(arch: arch, space: space, layout: weights.layout)
            var file = TensorFile()
            for (n, t) in s.tensors(from: weights) { file[n] = t }
            var back = SupernetWeights(layout: weights.layout)
            try s.insert(file, into: &back)
            for e in s.entries where e.source.role != .numBatchesTracked {
                let store = e.source.role.isParameter ? weights.parameters : weights.buffers
                let got = e.source.role.isParameter ? back.parameters : back.buffers
                let t = try #require(file[e.name]).floats()
                // Naive: the element [o, i, kh, kw] of the full tensor, the kernel centred.
                let full = e.source.shape, kMax = full.count == 4 ? full[2] : 1, k = e.shape.count == 4 ? e.shape[2] : 1
                let inMax = full.count >= 2 ? full[1] : 1, cin = e.shape.count >= 2 ? e.shape[1] : 1
                let off = (kMax - k) / 2
                let o = (e.shape.first ?? 1) - 1, i = cin - 1
                let row: Int = (o * inMax + i) * kMax + off + k - 1
                let flat: Int = row * kMax + off + k - 1
                let naive: Float = store[e.source.offset + flat]
                #expect(t.last == naive, "\(e.name): last element")
                #expect(got[e.source.offset + e.slice.index(o, i, k - 1, k - 1)] == naive)
            }
        }
        // A wrong shape, a missing or an extra tensor: refused naming it.
        let s = StaticSubnet(arch: space.minArch, space: space, layout: weights.layout)
        var file = TensorFile()
        for (n, t) in s.tensors(from: weights) { file[n] = t }
        var bad = file
        bad["classifier.linear.bias"] = Tensor([Float](repeating: 0, count: 3), shape: [3])
        var w = SupernetWeights(layout: weights.layout)
        #expect { try s.insert(bad, into: &w) } throws: { "\($0)".contains("classifier.linear.bias") && "\($0)".contains("shape [3]") }
        var extra = file
        extra["blocks.99.shortcut.conv.weight"] = Tensor([Float(1)], shape: [1])
        #expect { try s.insert(extra, into: &w) } throws: { "\($0)".contains("blocks.99") }
    }
}
