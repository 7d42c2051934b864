import FileFormats
import Foundation
import Testing

/// Small data for estimate-acc and infer tests: shards written directly,
/// an initialised tiny-space checkpoint from train-supernet --steps 0.
struct EstimationFixture {
    let h: ToolHarness
    var checkpoint: String { h.path("c.safetensors.lz4") }
    var train: String { h.path("train") }
    var val: String { h.path("val") }
    static let classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

    /// A small arch of the tiny space (resolution 24).
    static let minArch = #"{"resolution":24,"width":[8,8,16,24,32,48,64,80,256],"depth":[1,2,2,2,2,2,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,3,3,3,3,3,3]}"#
    static let otherArch = #"{"resolution":28,"width":[16,8,24,24,48,48,80,80,320],"depth":[1,2,2,2,2,2,1],"kernel_size":[5,3,3,5,3,3,3],"expand_ratio":[1,3,4,3,6,3,3]}"#

    init() throws {
        h = try ToolHarness()
        try FileManager.default.createDirectory(atPath: train, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: val, withIntermediateDirectories: true)
        try EstimationFixture.writeShard(h.path("train/train-00000.safetensors.lz4"), count: 16, seed: 1)
        try EstimationFixture.writeShard(h.path("val/val-00000.safetensors.lz4"), count: 12, seed: 2)
        try EstimationFixture.writeShard(h.path("val/val-00001.safetensors.lz4"), count: 8, seed: 3)
        let r = try h.run("train-supernet", ["--space", ToolHarness.space("tiny"), "--data", train, "--checkpoint", checkpoint, "--steps", "0"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A shard of `count` 16x16 RGB images with a class-dependent pattern.
    static func writeShard(_ path: String, count: Int, seed: UInt64, size: Int = 16) throws {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        var pixels: [UInt8] = []
        var labels: [Int32] = []
        for _ in 0..<count {
            let label = Int32(next() % 10)
            labels.append(label)
            for y in 0..<size {
                for x in 0..<size {
                    for c in 0..<3 {
                        let base = (Int(label) * 25 + x * 7 * (c + 1) + y * 3) % 256
                        pixels.append(UInt8((base + Int(next() % 40)) % 256))
                    }
                }
            }
        }
        var file = TensorFile(metadata: ["split": "val", "classes": JSONValue.array(classes.map { .string($0) }).jsonText])
        file["images"] = Tensor(pixels, shape: [count, size, size, 3])
        file["labels"] = Tensor(labels, shape: [count])
        try file.write(to: path, compressed: path.hasSuffix(".lz4"))
    }

    func estimate(_ archs: String, _ extra: [String] = []) throws -> ToolHarness.Result {
        try h.run("estimate-acc", ["--checkpoint", checkpoint, "--calib", train, "--val", val,
                                   "--calib-batches", "2", "--batch-size", "8"] + extra, stdin: archs)
    }

    static func object(_ line: String) throws -> JSONValue {
        try JSONValue.parse(line)
    }
}
