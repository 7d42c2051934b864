import System
import FileFormats
import Foundation
import Supernet
import Testing
import TestSupport

func loadJSON(_ path: String) throws -> JSONValue {
    let bytes = try readWholeFile(path)
    return try bytes.withUnsafeBufferPointer { try JSONValue.parse(bytes: $0) }
}

@Suite struct ArchCostTests {
    let space: SearchSpace

    init() throws { space = try SearchSpace(contentsOf: Paths.space("alphanet")) }

    /// The official eval_alphanet_models.yml configs and their published MFLOPs.
    static let alphanetModels: [(String, Arch, Double)] = [
        ("a0", Arch(resolution: 192, width: [16, 16, 24, 32, 64, 112, 192, 216, 1792], depth: [1, 3, 3, 3, 3, 3, 1], kernelSize: [3, 3, 3, 3, 3, 3, 3], expandRatio: [1, 4, 4, 4, 4, 6, 6]), 203.4),
        ("a1", Arch(resolution: 224, width: [16, 16, 24, 32, 64, 112, 192, 216, 1984], depth: [1, 3, 3, 3, 3, 3, 1], kernelSize: [3, 3, 3, 5, 3, 5, 3], expandRatio: [1, 4, 4, 4, 4, 6, 6]), 279.2),
        ("a2", Arch(resolution: 224, width: [16, 16, 24, 32, 64, 112, 200, 224, 1984], depth: [1, 3, 3, 3, 3, 4, 1], kernelSize: [3, 3, 3, 3, 3, 5, 3], expandRatio: [1, 4, 5, 4, 4, 6, 6]), 316.7),
        ("a3", Arch(resolution: 224, width: [16, 16, 24, 32, 64, 112, 208, 224, 1984], depth: [2, 3, 3, 4, 3, 5, 1], kernelSize: [3, 3, 3, 5, 3, 3, 3], expandRatio: [1, 4, 4, 4, 4, 6, 6]), 356.5),
        ("a4", Arch(resolution: 256, width: [16, 16, 24, 32, 64, 112, 192, 216, 1984], depth: [1, 3, 3, 4, 3, 5, 1], kernelSize: [3, 3, 3, 5, 3, 5, 3], expandRatio: [1, 4, 4, 5, 4, 6, 6]), 443.5),
        ("a5_small", Arch(resolution: 256, width: [16, 16, 24, 32, 64, 112, 208, 216, 1984], depth: [1, 3, 3, 4, 4, 5, 1], kernelSize: [3, 3, 3, 3, 3, 5, 3], expandRatio: [1, 4, 4, 5, 4, 6, 6]), 491.5),
        ("a5_base", Arch(resolution: 288, width: [16, 16, 24, 32, 64, 112, 200, 216, 1984], depth: [2, 3, 4, 3, 3, 5, 1], kernelSize: [3, 3, 5, 5, 3, 3, 3], expandRatio: [1, 4, 4, 4, 5, 6, 6]), 594.8),
        ("a6", Arch(resolution: 288, width: [16, 16, 24, 32, 64, 112, 216, 224, 1984], depth: [1, 3, 3, 4, 4, 6, 1], kernelSize: [3, 3, 3, 3, 3, 5, 3], expandRatio: [1, 4, 6, 5, 4, 6, 6]), 709.0),
    ]

    @Test(arguments: alphanetModels.map { $0.0 })
    func officialModelFLOPs(name: String) throws {
        let (_, arch, expected) = try #require(Self.alphanetModels.first { $0.0 == name })
        try arch.validate(in: space)
        let f = arch.flops(in: space)
        #expect(abs(f - expected) <= 0.05 + 1e-9, "\(name): \(f) MFLOPs, published \(expected)")
    }

    /// MFLOPs and static-subnet parameter counts that the official code
    /// printed for every case of the forward references (both spaces).
    @Test(.requires(.referenceData), arguments: [("forward_reference", "alphanet"), ("tiny_forward_reference", "tiny")])
    func referenceCasesFLOPsAndParams(file: String, spaceName: String) throws {
        let space = try SearchSpace(contentsOf: Paths.space(spaceName))
        let ref = try loadJSON(Paths.reference + "/\(file).json")
        let cases = try #require(ref["cases"]?.arrayValue)
        #expect(cases.count >= 3)
        var checked = 0
        for c in cases {
            let arch = try Arch(json: try #require(c["cfg"]))
            let name = c["name"]?.stringValue ?? "?"
            if let mflops = c["mflops"]?.doubleValue {
                #expect(abs(arch.flops(in: space) - mflops) <= 1e-6 * mflops, "\(name)")
            }
            if let params = c["static_subnet_params"]?.intValue {
                #expect(arch.parameterCount(in: space) == Int(params), "\(name)")
                checked += 1
            }
        }
        #expect(checked >= 2)
    }

    @Test func minAndMaxArchs() throws {
        #expect(space.minArch.width == [16, 16, 24, 32, 64, 112, 192, 216, 1792])
        #expect(space.maxArch.depth == [2, 5, 6, 6, 8, 8, 2])
        #expect(space.minArch.flops(in: space) < space.maxArch.flops(in: space))
    }

    @Test func archJSONErrorsNameTheField() throws {
        let bad = try JSONValue.parse(#"{"resolution":224,"width":[16,16,24,32,64,112,192,216],"depth":[1,3,3,3,3,3,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,4,4,4,4,6,6]}"#)
        #expect(throws: ArchError.self) { try Arch(json: bad) }
        do { _ = try Arch(json: bad) } catch { #expect(error.field == "width") }
        var arch = space.minArch
        arch.kernelSize[2] = 7
        do { try arch.validate(in: space); Issue.record("kernel 7 accepted") } catch { #expect(error.field == "kernel_size[2]") }
    }

    @Test func mergeKeepsForeignKeysInPlace() throws {
        let line = try JSONValue.parse(#"{"id":7,"resolution":192,"width":[16,16,24,32,64,112,192,216,1792],"depth":[1,3,3,3,3,3,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,4,4,4,4,6,6],"note":"x"}"#)
        var arch = try Arch(json: line)
        arch.resolution = 288
        let out = arch.merged(into: line)
        #expect(out.objectValue?.map(\.0) == ["id", "resolution", "width", "depth", "kernel_size", "expand_ratio", "note"])
        #expect(out["resolution"] == .int(288))
        #expect(out["note"] == .string("x"))
    }
}
