import System
import FileFormats
import Foundation
import Supernet
import Testing
import TestSupport

@Suite struct CheckpointTests {
    func patterned(_ space: SearchSpace) -> SupernetWeights {
        var w = SupernetWeights(layout: SupernetLayout(space: space))
        for i in w.parameters.indices { w.parameters[i] = Float(i % 101) * 0.01 - 0.5 }
        for i in w.buffers.indices { w.buffers[i] = Float(i % 7) + 0.25 }
        return w
    }

    func tempPath(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    @Test func roundTripWithTrainingState() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let w = patterned(space)
        let momentum = w.parameters.map { $0 * 2 }
        let state = TrainingState(momentum: momentum, step: 123, randomState: [1, 2, UInt64.max, 4], info: .object([("lr", .double(0.1))]))
        let path = try tempPath("c.safetensors.lz4")
        try Checkpoint(space: space, weights: w, training: state).write(to: path)
        let back = try Checkpoint(contentsOf: path)
        #expect(back.space == space)
        #expect(back.weights.parameters == w.parameters)
        #expect(back.weights.buffers == w.buffers)
        #expect(back.training == state)
    }

    @Test func officialStateDictWithModulePrefixLoadsWithGivenSpace() throws {
        let space = try SearchSpace(contentsOf: Paths.space("tiny"))
        let w = patterned(space)
        var file = TensorFile()
        for e in w.layout.entries where e.role != .numBatchesTracked && !e.name.contains("bn_tracking") {
            file["module." + e.name] = Tensor(try #require(w.values(of: e.name)), shape: e.shape)
        }
        #expect(throws: Failure.self) { try Checkpoint(file: file) }
        let c = try Checkpoint(file: file, space: space)
        #expect(c.weights.parameters == w.parameters)
        #expect(c.training == nil)
    }

    @Test func checkpointOfAnotherSpaceIsRefusedWithTheTensorName() throws {
        let tiny = try SearchSpace(contentsOf: Paths.space("tiny"))
        let official = try SearchSpace(contentsOf: Paths.space("alphanet"))
        let file = Checkpoint(space: tiny, weights: patterned(tiny)).tensorFile()
        do {
            _ = try Checkpoint(file: file, space: official)
            Issue.record("accepted a tiny-space checkpoint for the official space")
        } catch {
            #expect(error.message.contains("first_conv.conv.conv.weight has shape [16, 3, 3, 3] but the space needs [24, 3, 3, 3]"))
        }
        var other = TensorFile(metadata: ["format": "something-else"])
        other["x"] = Tensor([Float(1)], shape: [1])
        #expect(throws: Failure.self) { try Checkpoint(file: other, space: tiny) }
    }
}
