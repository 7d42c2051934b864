import FileFormats
import NASCore
import Supernet
import Testing
import TestSupport

/// Logits of the official PyTorch model (forward_reference.json,
/// tiny_forward_reference.json) on generator weights and inputs.
@Suite struct ForwardReferenceTests {
    static let files = [("tiny_forward_reference", "tiny"), ("forward_reference", "alphanet")]

    @Test(.requires(.referenceData), arguments: files)
    func logitsMatchOfficialModel(file: String, spaceName: String) throws {
        let space = try SearchSpace(contentsOf: Paths.space(spaceName))
        let ref = try loadJSON(Paths.reference + "/\(file).json")
        let model = Supernet(weights: try Reference.weights(space), space: space, context: ComputeContext(workers: 2))
        let cases = try #require(ref["cases"]?.arrayValue)
        var random = SeededRandom(seed: 0)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let arch = try Arch(json: try #require(c["cfg"]))
            let shape = try #require(c["input"]?["shape"]?.arrayValue).compactMap { $0.intValue }.map(Int.init)
            let (b, r) = (shape[0], shape[2])
            let input = Reference.inputNHWC(batch: b, resolution: r)
            let eval = c["mode"]?.stringValue == "eval"
            let logits = input.withUnsafeBufferPointer {
                model.forward(arch: arch, input: $0, shape: Shape4(n: b, h: r, w: r, c: 3),
                              normalization: eval ? .runningStatistics : .batchStatistics, trainable: false, random: &random)
            }
            let expected = try #require(c["logits_f32"]?.arrayValue).flatMap { try #require($0.arrayValue) }.compactMap(\.doubleValue)
            #expect(logits.count == expected.count, "\(name)")
            let tol = 1e-4 * Reference.std(expected)
            let maxDiff = zip(logits, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
            #expect(maxDiff <= tol, "\(file) \(name): max |ours - reference| = \(maxDiff), tolerance \(tol)")
        }
    }
}
