import FileFormats
import Foundation
import Testing

/// Small inputs for train-supernet tool tests, sized for a debug build: a micro
/// search space (16 px, 4 classes, one or two choices per stage) and shards of a
/// colour-separable synthetic dataset (class k: a dominant colour plus noise).
enum TrainSupernetFixtures {
    /// A search space with the official structure, small enough that a debug
    /// build runs a batch-8 sandwich step in a fraction of a second.
    static let microSpace = """
    {
     "supernet_config": {
      "use_v3_head": true,
      "resolutions": [16],
      "first_conv": {"c": [8], "act_func": "swish", "s": 1},
      "mb1": {"c": [8], "d": [1], "k": [3], "t": [1], "s": 1, "act_func": "swish", "se": false},
      "mb2": {"c": [8, 16], "d": [1, 2], "k": [3], "t": [1, 2], "s": 2, "act_func": "swish", "se": false},
      "mb3": {"c": [16], "d": [1], "k": [3], "t": [2], "s": 1, "act_func": "swish", "se": true},
      "mb4": {"c": [16], "d": [1], "k": [3], "t": [2], "s": 2, "act_func": "swish", "se": false},
      "mb5": {"c": [16], "d": [1], "k": [3], "t": [2], "s": 1, "act_func": "swish", "se": false},
      "mb6": {"c": [16], "d": [1], "k": [3], "t": [2], "s": 2, "act_func": "swish", "se": false},
      "mb7": {"c": [16], "d": [1], "k": [3, 5], "t": [2], "s": 1, "act_func": "swish", "se": false},
      "last_conv": {"c": [32], "act_func": "swish"}
     },
     "n_classes": 4,
     "bn_momentum": 0.0,
     "bn_eps": 1e-05
    }
    """

    static let size = 16
    static let classes = 4

    /// Writes `micro.json`, `train/` (`trainImages` in shards of 64) and
    /// `val/` (`valImages`) into the harness directory.
    static func make(in h: ToolHarness, trainImages: Int = 256, valImages: Int = 128) throws {
        try microSpace.write(toFile: h.path("micro.json"), atomically: true, encoding: .utf8)
        try writeShards(dir: h.path("train"), split: "train", images: trainImages, seed: 1)
        try writeShards(dir: h.path("val"), split: "val", images: valImages, seed: 2)
    }

    /// Class k in 0..<4: colours red, green, blue, grey at random brightness,
    /// with uniform pixel noise; a network separates them from the channel means.
    static func writeShards(dir: String, split: String, images: Int, seed: UInt64) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let perShard = 64
        var done = 0, shard = 0
        let names = (0..<classes).map { "\"c\($0)\"" }.joined(separator: ",")
        while done < images {
            let n = min(perShard, images - done)
            var px: [UInt8] = []
            px.reserveCapacity(n * size * size * 3)
            var labels: [Int32] = []
            for _ in 0..<n {
                let k = Int(next() % UInt64(classes))
                labels.append(Int32(k))
                let bright = 120 + Int(next() % 100)
                for _ in 0..<(size * size) {
                    for c in 0..<3 {
                        let on = k == 3 || c == k
                        let base = on ? bright : 40
                        px.append(UInt8(clamping: base + Int(next() % 60) - 30))
                    }
                }
            }
            var f = TensorFile(metadata: ["split": split, "size": String(size), "classes": "[\(names)]"])
            f["images"] = Tensor(px, shape: [n, size, size, 3])
            f["labels"] = Tensor(labels, shape: [n])
            try f.write(to: dir + String(format: "/\(split)-%05d.safetensors.lz4", shard))
            done += n
            shard += 1
        }
    }

    /// The options every test run shares (debug-build sized).
    static func common(_ h: ToolHarness, checkpoint: String = "c.safetensors.lz4") -> [String] {
        ["--space", h.path("micro.json"), "--data", h.path("train"), "--checkpoint", checkpoint,
         "--batch-size", "8", "--augment", "none", "--shuffle-buffer", "64"]
    }

    /// File names in the harness directory.
    static func listing(_ h: ToolHarness) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: h.dir)) ?? []).sorted()
    }
}
