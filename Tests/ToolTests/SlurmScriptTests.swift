import FileFormats
import Foundation
import Testing
import TestSupport

/// The sbatch scripts of Scripts/slurm, run by bash as Slurm would run them on one
/// node: the training script with its launcher set to `mpirun --oversubscribe -np 2`
/// (srun needs a Slurm cluster), the evaluation array task by task with the variables
/// Slurm sets for --array=1-3, then its merge step.
@Suite(.serialized) struct SlurmScriptTests {
    static let scripts = ToolHarness.repo + "/Scripts/slurm"

    static func sbatch(_ h: ToolHarness, _ script: String, _ args: [String], environment: [String: String] = [:]) throws -> ToolHarness.Result {
        var env = MPITrainingTests.environment
        env["ALPHANET_BIN"] = ToolHarness.binDir
        env["SLURM_SUBMIT_DIR"] = h.dir
        for (k, v) in environment { env[k] = v }
        return try h.runExecutable("/bin/bash", [scripts + "/" + script] + args, environment: env)
    }

    @Test(.requires(.mpirun)) func trainingScriptTrainsTwoRanksAndResumes() throws {
        let h = try ToolHarness()
        try TrainSupernetFixtures.make(in: h, trainImages: 64, valImages: 16)
        let launch = ["LAUNCH": "mpirun --oversubscribe -np 2"]
        let args = ["micro.json", "train", "run.safetensors.lz4", "--batch-size", "8", "--total-steps", "8", "--log-every", "1"]
        let first = try Self.sbatch(h, "train.sbatch", args + ["--steps", "2"], environment: launch)
        #expect(first.status == 0 && first.stderr.contains("an MPI job of 2 ranks: global batch 16"), "\(first.stderr)")
        let second = try Self.sbatch(h, "train.sbatch", args + ["--steps", "3"], environment: launch)
        #expect(second.status == 0 && second.stderr.contains("resuming run.safetensors.lz4 at step 2"), "\(second.stderr)")
        let file = try TensorFile(contentsOf: h.path("run.safetensors.lz4"))
        #expect(file.metadata["step"] == "3")
        // The log of both runs, appended, one line a step.
        let log = try String(contentsOfFile: h.path("run.log.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(log.map { (try? JSONValue.parse(String($0))["step"]?.intValue) ?? nil } == [1, 2, 3], "\(log)")
        let usage = try Self.sbatch(h, "train.sbatch", ["micro.json"])
        #expect(usage.status == 64 && usage.stderr.contains("usage: sbatch Scripts/slurm/train.sbatch"), "\(usage.stderr)")
    }

    @Test func estimationArrayAndMergePrintWhatOneRunPrints() throws {
        let f = try EstimationFixture()
        let sampled = try f.h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "5", "--seed", "9", "--unique"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        try (sampled.lines.joined(separator: "\n") + "\n").write(toFile: f.h.path("archs.jsonl"), atomically: true, encoding: .utf8)
        let options = ["--checkpoint", f.checkpoint, "--calib", f.train, "--val", f.val, "--calib-batches", "2", "--batch-size", "8", "--val-limit", "10"]
        let single = try f.h.run("estimate-acc", options + ["--threads", "1", f.h.path("archs.jsonl")])
        #expect(single.status == 0 && single.lines.count == 5, "\(single.stderr)")
        for task in 0..<3 {
            let r = try Self.sbatch(f.h, "estimate-array.sbatch", ["acc", "archs.jsonl"] + options,
                                    environment: ["SLURM_ARRAY_TASK_ID": String(task + 1), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"])
            #expect(r.status == 0, "task \(task): \(r.stderr)")
            let part = try String(contentsOfFile: f.h.path("acc/part.\(task).jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(part == stride(from: task, to: 5, by: 3).map { single.lines[$0] }, "task \(task)")
        }
        let merged = try Self.sbatch(f.h, "estimate-array.sbatch", ["--merge", "acc", "archs.jsonl"] + options)
        #expect(merged.status == 0 && merged.stderr.contains("5 archs done (5 cached)"), "\(merged.stderr)")
        let all = try String(contentsOfFile: f.h.path("acc/acc.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(all == single.lines)
        let outside = try Self.sbatch(f.h, "estimate-array.sbatch", ["acc", "archs.jsonl"] + options)
        #expect(outside.status != 0 && outside.stderr.contains("not a job array task"), "\(outside.stderr)")
    }
}
