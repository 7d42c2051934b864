import FileFormats
import Foundation
import Testing
import TestSupport

/// train-supernet as an MPI job: real ranks through `mpirun --oversubscribe -np N` on
/// the micro space. One rank under mpirun is a plain run; two ranks train data-parallel
/// (the global batch split over them, gradients averaged), resume exactly, write once,
/// stop together on SIGTERM, and end fast when a rank dies.
@Suite(.serialized) struct MPITrainingTests {
    typealias F = TrainSupernetFixtures

    /// mpirun as root needs its consent variables; more ranks than cores need --oversubscribe.
    static let environment: [String: String] = getuid() == 0
        ? ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"] : [:]

    static func mpirun(_ ranks: Int, _ args: [String]) -> [String] {
        ["--oversubscribe", "-np", String(ranks), ToolHarness.binDir + "/train-supernet"] + args
    }

    static func run(_ h: ToolHarness, ranks: Int, _ args: [String]) throws -> ToolHarness.Result {
        var r = try ToolHarness.execute("/usr/bin/env", ["mpirun"] + mpirun(ranks, args), in: h.dir, environment: environment)
        return ToolHarness.Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
    }

    static func stripped(_ lines: [String]) -> [String] { lines.map { $0.components(separatedBy: ",\"images_per_s\"")[0] } }

    static func bytes(_ h: ToolHarness, _ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: h.path(name))) }

    @Test(.requires(.mpirun)) func oneRankUnderMpirunIsAPlainRun() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        // One thread each: mpirun binds a rank to one core, and thread counts change the
        // order of float sums.
        let plain = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors.lz4") + ["--steps", "3", "--total-steps", "6", "--log-every", "1", "--threads", "1"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let one = try Self.run(h, ranks: 1, F.common(h, checkpoint: "one.safetensors.lz4") + ["--steps", "3", "--total-steps", "6", "--log-every", "1", "--threads", "1"])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(one.stderr.contains("an MPI job of 1 rank"), "\(one.stderr)")
        #expect(Self.stripped(one.lines) == Self.stripped(plain.lines))
        #expect(try Self.bytes(h, "one.safetensors.lz4") == Self.bytes(h, "plain.safetensors.lz4"))
    }

    @Test(.requires(.mpirun)) func twoRanksTrainResumeExactlyAndWriteOnce() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 128, valImages: 16)
        let once = try Self.run(h, ranks: 2, F.common(h, checkpoint: "once.safetensors.lz4") + ["--steps", "4", "--total-steps", "8", "--log-every", "1"])
        #expect(once.status == 0, "\(once.stderr)")
        // Rank 0 alone writes the log and messages.
        #expect(once.lines.count == 4, "\(once.stdout)")
        #expect(once.stderr.components(separatedBy: "an MPI job of 2 ranks: global batch 16 = 2 x --batch-size 8").count == 2, "\(once.stderr)")
        #expect(once.stderr.contains("epochs of 8 steps of 16"), "\(once.stderr)")
        for line in once.lines {
            let losses = try #require(try JSONValue.parse(line)["loss"]?.arrayValue).compactMap(\.doubleValue)
            #expect(losses.count == 4 && losses.allSatisfy(\.isFinite), "\(line)")
        }
        let file = try TensorFile(contentsOf: h.path("once.safetensors.lz4"))
        #expect(file.metadata["step"] == "4")
        #expect(file.metadata["training"]?.contains(#""ranks":2"#) == true)
        // Cut in two and resumed on two ranks: the same checkpoint, byte for byte.
        let first = try Self.run(h, ranks: 2, F.common(h, checkpoint: "split.safetensors.lz4") + ["--steps", "2", "--total-steps", "8", "--log-every", "1"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try Self.run(h, ranks: 2, F.common(h, checkpoint: "split.safetensors.lz4") + ["--steps", "4", "--log-every", "1"])
        #expect(second.status == 0 && second.stderr.contains("resuming split.safetensors.lz4 at step 2"), "\(second.stderr)")
        #expect(Self.stripped(once.lines) == Self.stripped(first.lines + second.lines))
        #expect(try Self.bytes(h, "once.safetensors.lz4") == Self.bytes(h, "split.safetensors.lz4"), "4 steps and 2 + 2 steps on 2 ranks differ")
        // Two ranks do not compute what one does (each normalises its own half batch, as
        // the official default BN), but they train: the losses are those of a real run.
        let plain = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors.lz4") + ["--steps", "4", "--total-steps", "8", "--log-every", "1", "--batch-size", "16"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(Self.stripped(plain.lines) != Self.stripped(once.lines))
        // Another rank count is refused on resume, naming it; so is an order ranks cannot split.
        let alone = try h.run("train-supernet", F.common(h, checkpoint: "once.safetensors.lz4") + ["--steps", "6"])
        #expect(alone.status == 64 && alone.stderr.contains("ranks (mpirun -np): checkpoint 2, given 1"), "\(alone.stderr)")
        let buffer = try Self.run(h, ranks: 2, F.common(h, checkpoint: "b.safetensors.lz4") + ["--steps", "2", "--data-order", "buffer"])
        #expect(buffer.status != 0 && buffer.stderr.contains("cannot be split"), "\(buffer.stderr)")
    }

    static func start(_ h: ToolHarness, ranks: Int, _ args: [String], tag: String) throws -> BackgroundProcess {
        try BackgroundProcess("/usr/bin/env", ["mpirun"] + mpirun(ranks, args), in: h, stderrTag: tag, environment: environment)
    }

    /// SIGTERM to the job's ranks (what Slurm's scancel and srun do; mpirun run from a
    /// shell forwards its own SIGTERM the same way): every rank stops at the same step,
    /// rank 0 saves one checkpoint, and the job exits 0.
    @Test(.requires(.mpirun)) func sigtermToTheJobSavesOnceAndExitsZero() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 128, valImages: 16)
        let job = try Self.start(h, ranks: 2, F.common(h) + ["--steps", "100000", "--total-steps", "100000", "--log-every", "1", "--save-every", "100000"], tag: "term")
        #expect(job.waitForLines(2).count == 2, "no steps logged")
        let ranks = job.children(named: "train-supernet")
        #expect(ranks.count == 2, "ranks \(ranks)")
        for pid in ranks { kill(pid, SIGTERM) }
        let end = job.finish(hangLimit: 120)
        let stderr = (try? String(contentsOfFile: h.path("term.err"), encoding: .utf8)) ?? ""
        #expect(end.status == 0, "\(stderr)")
        let file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        let step = try #require(file.metadata["step"].flatMap { Int($0) })
        #expect(step >= 2, "saved step \(step)")
        #expect(stderr.components(separatedBy: "saved c.safetensors.lz4 at step \(step) after signal").count == 2, "\(stderr)")
    }

    /// kill -9 of one rank: the job ends nonzero within seconds, never hangs, and the
    /// checkpoint is the last one saved, whole.
    @Test(.requires(.mpirun)) func aKilledRankEndsTheJobAndKeepsTheCheckpoint() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 128, valImages: 16)
        let job = try Self.start(h, ranks: 2, F.common(h) + ["--steps", "100000", "--total-steps", "100000", "--log-every", "1", "--save-every", "2"], tag: "kill")
        #expect(job.waitForLines(3).count == 3, "no steps logged")
        let ranks = job.children(named: "train-supernet")
        #expect(ranks.count == 2, "ranks \(ranks)")
        if let victim = ranks.last { kill(victim, SIGKILL) }
        let end = job.finish(hangLimit: 120)
        #expect(end.status != 0)
        #expect(end.seconds < 60, "the job took \(end.seconds) s to end")
        let file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        let step = try #require(file.metadata["step"].flatMap { Int($0) })
        #expect(step >= 2 && step % 2 == 0, "saved step \(step)")
        #expect(F.listing(h).filter { $0.hasPrefix("c.") } == ["c.safetensors.lz4"], "\(F.listing(h))")
    }
}
