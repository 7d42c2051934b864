import FileFormats
import Foundation
import Testing

/// The seam between the tools and the library, through the built binaries: typed
/// option values, the one error model's exit codes, and the training-run defects
/// found by trying the tools as a new user would.
@Suite("Tool seam")
struct ToolSeamTests {
    typealias F = TrainSupernetFixtures

    /// Every enumerated option: an unknown value is a usage error (64) naming the
    /// allowed values, and --help lists them.
    @Test(arguments: [
        ("train-supernet", "--kd", ["alpha", "kl", "none"]),
        ("train-supernet", "--augment", ["train", "auto-augment-tf", "pad-crop", "none"]),
        ("train-supernet", "--lr-schedule", ["warmup-cosine", "constant"]),
        ("train-supernet", "--sampler", ["uniform", "attentive-bestup", "attentive-worstup"]),
        ("estimate-acc", "--transform", ["auto", "eval", "resize"]),
        ("infer", "--bn", ["running", "batch"]),
        ("infer", "--transform", ["eval", "resize"]),
        ("fit-predictor", "--model", ["gbdt", "rf", "ridge", "mlp"]),
        ("fit-predictor", "--activation", ["relu", "tanh"]),
        ("evo-search", "--algorithm", ["front", "official"]),
    ])
    func unknownEnumeratedValuesAreUsageErrors(tool: String, option: String, values: [String]) throws {
        let h = try ToolHarness()
        let r = try h.run(tool, [option, "bogus"])
        #expect(r.status == 64, "\(tool) \(option) bogus: \(r.stderr)")
        #expect(r.stderr.hasPrefix("\(tool): error:"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        for v in values { #expect(r.stderr.contains("'\(v)'"), "\(tool) \(option): \(v) not named in \(r.stderr)") }
        let help = try h.run(tool, ["--help"])
        #expect(help.status == 0)
        let flat = help.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        #expect(flat.contains("(values: " + values.joined(separator: ", ")), "\(tool) --help does not list the values of \(option): \(flat)")
    }

    /// The error model end to end: a missing file is a runtime failure (1), a file that
    /// is not a checkpoint bad data (65), both one line naming the file.
    @Test func exitCodesFollowTheErrorModel() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 16, valImages: 16)
        let arch = try #require(try h.run("sample-subnets", ["--space", h.path("micro.json"), "--min"]).lines.first)
        let missing = try h.run("estimate-acc", ["--checkpoint", "nothing.safetensors.lz4", "--calib", h.path("train"), "--val", h.path("val")], stdin: arch + "\n")
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.hasPrefix("estimate-acc: error: nothing.safetensors.lz4: "), "\(missing.stderr)")
        try Data("not a tensor file\u{1}\u{7}".utf8).write(to: URL(fileURLWithPath: h.path("junk.safetensors")))
        let junk = try h.run("infer", ["--checkpoint", "junk.safetensors", "--space", h.path("micro.json"), "--arch", arch, "--images", h.path("val/val-00000.safetensors.lz4")])
        #expect(junk.status == 65, "\(junk.stderr)")
        #expect(junk.stderr.hasPrefix("infer: error: junk.safetensors: "), "\(junk.stderr)")
        #expect(!junk.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "control bytes echoed: \(junk.stderr)")
        let badSpace = try h.run("sample-subnets", ["--space", h.path("junk.safetensors")])
        #expect(badSpace.status == 65, "\(badSpace.stderr)")
        #expect(badSpace.stderr.contains("junk.safetensors"))
    }

    /// An upstream failure in a pipe leaves train-supernet an empty stream: exit 65,
    /// nothing written, an existing checkpoint untouched.
    @Test func emptyStreamIsBadDataAndKeepsTheCheckpoint() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        var stream = F.common(h)
        stream[stream.firstIndex(of: "--data")! + 1] = "-"
        let fresh = try h.run("train-supernet", stream + ["--steps", "2"], stdin: "")
        #expect(fresh.status == 65, "\(fresh.stderr)")
        #expect(fresh.stderr.contains("<stdin>"), "\(fresh.stderr)")
        #expect(!F.listing(h).contains { $0.hasPrefix("c.safetensors") }, "\(F.listing(h))")

        let trained = try h.run("train-supernet", F.common(h) + ["--steps", "2", "--total-steps", "10"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let before = try Data(contentsOf: URL(fileURLWithPath: h.path("c.safetensors.lz4")))
        let resumed = try h.run("train-supernet", stream + ["--steps", "4"], stdin: "")
        #expect(resumed.status == 65, "\(resumed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: h.path("c.safetensors.lz4"))) == before)
        #expect(!F.listing(h).contains { $0.contains(".tmp-") }, "\(F.listing(h))")
    }

    /// DESIGN.md: official checkpoints convert by renaming nothing. A plain state_dict
    /// (model tensors only, no metadata) with --space starts training from its weights.
    @Test func plainStateDictStartsTraining() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        let first = try h.run("train-supernet", F.common(h) + ["--steps", "0"])
        #expect(first.status == 0, "\(first.stderr)")
        let full = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        var plain = TensorFile()
        for (name, tensor) in full.tensors where !name.hasPrefix("optimizer.") { plain[name] = tensor }
        try plain.write(to: h.path("plain.safetensors"), compressed: false)
        let r = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors") + ["--steps", "2", "--total-steps", "10"])
        #expect(r.status == 0, "\(r.stderr)")
        let trained = try TensorFile(contentsOf: h.path("plain.safetensors"))
        #expect(trained.metadata["step"] == "2")
        #expect(trained.metadata["format"] == "alphanet-checkpoint")
    }

    /// Unreadable training metadata is bad data (65) and the file stays as it was,
    /// never a silent restart at step 0 with default options.
    @Test(arguments: ["step", "training", "random_state", "batch_size 0", "batch_size -8"])
    func unreadableTrainingMetadataIsRefused(key: String) throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        let r0 = try h.run("train-supernet", F.common(h) + ["--steps", "2", "--total-steps", "10"])
        #expect(r0.status == 0, "\(r0.stderr)")
        var file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        if key.hasPrefix("batch_size") {
            // Well-formed JSON whose stored optimizer batch is not a batch.
            let training = try #require(file.metadata["training"])
            #expect(training.contains(#""batch_size":8"#), "\(training)")
            file.metadata["training"] = training.replacingOccurrences(of: #""batch_size":8"#, with: #""batch_size":"# + key.dropFirst(11))
        } else {
            file.metadata[key] = key == "step" ? "-3" : "{not json"
        }
        try file.write(to: h.path("c.safetensors.lz4"))
        let before = try Data(contentsOf: URL(fileURLWithPath: h.path("c.safetensors.lz4")))
        let r = try h.run("train-supernet", F.common(h) + ["--steps", "4"])
        #expect(r.status == 65, "\(key): \(r.stderr)")
        #expect(r.stderr.contains("c.safetensors.lz4"), "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: h.path("c.safetensors.lz4"))) == before)
    }

    /// A checkpoint path that is a directory is unreadable (1, as the README says), in
    /// every tool that reads checkpoints; the message names it once.
    @Test func checkpointPathThatIsADirectoryIsARuntimeFailure() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 16, valImages: 16)
        try FileManager.default.createDirectory(atPath: h.path("ckdir"), withIntermediateDirectories: true)
        let arch = try #require(try h.run("sample-subnets", ["--space", h.path("micro.json"), "--min"]).lines.first)
        let runs = [
            try h.run("train-supernet", F.common(h, checkpoint: "ckdir") + ["--steps", "1"]),
            try h.run("estimate-acc", ["--checkpoint", "ckdir", "--calib", h.path("train"), "--val", h.path("val")], stdin: arch + "\n"),
            try h.run("infer", ["--checkpoint", "ckdir", "--arch", arch, "--images", h.path("val/val-00000.safetensors.lz4")]),
        ]
        for r in runs {
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains("ckdir") && r.stderr.contains("directory") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.components(separatedBy: "ckdir").count == 2, "named twice: \(r.stderr)")
        }
    }

    /// A checkpoint in a directory that does not exist fails before the first step.
    @Test func unwritableCheckpointDirectoryFailsFirst() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        let r = try h.run("train-supernet", F.common(h, checkpoint: h.path("no/such/dir/c.safetensors.lz4")) + ["--steps", "2"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("no/such/dir"), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "trained before failing: \(r.stdout)")
    }
}
