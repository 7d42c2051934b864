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
            let seconds = try JSONValue.parse(line)
            #expect((seconds["allreduce_s"]?.doubleValue ?? -1) >= 0 && (seconds["allreduce_wait_s"]?.doubleValue ?? -1) >= 0, "\(line)")
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
        // Another rank count resumes only with the same global batch (1 x 16 here, not 1 x 8);
        // an order ranks cannot split is refused.
        let alone = try h.run("train-supernet", F.common(h, checkpoint: "once.safetensors.lz4") + ["--steps", "6"])
        #expect(alone.status == 64 && alone.stderr.contains("a global batch of 16 (2 ranks x --batch-size 8); 1 rank x --batch-size 8 is 8; resume with --batch-size 16"), "\(alone.stderr)")
        let buffer = try Self.run(h, ranks: 2, F.common(h, checkpoint: "b.safetensors.lz4") + ["--steps", "2", "--data-order", "buffer"])
        #expect(buffer.status != 0 && buffer.stderr.contains("cannot be split"), "\(buffer.stderr)")
    }

    /// The tensors of two checkpoints that differ by more than `tolerance` of their norm
    /// (relative L2), with that ratio. A tensor whose norm is rounding noise in both
    /// (below 1e-6) counts as equal: the BN beta of each block's linear projection only
    /// feeds linear layers and the next BN, which removes any constant shift, so its
    /// gradient is 0 analytically and its value the sums' rounding (norm ~1e-8).
    static func differing(_ a: String, _ b: String, in h: ToolHarness, tolerance: Double) throws -> [String] {
        let x = try TensorFile(contentsOf: h.path(a)), y = try TensorFile(contentsOf: h.path(b))
        let other = Dictionary(uniqueKeysWithValues: y.tensors.map { ($0.name, $0.tensor) })
        #expect(x.tensors.count == other.count && x.tensors.count > 10)
        func norm(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        var out: [String] = []
        for (name, t) in x.tensors where t.dtype == .f32 {
            guard let u = other[name] else { out.append(name); continue }
            let p = t.floats(), q = u.floats()
            guard p.count == q.count else { out.append(name); continue }
            if p == q { continue }
            let (np, nq) = (norm(p), norm(q))
            if np < 1e-6 && nq < 1e-6 {
                #expect(name.contains("point_linear.bn.bn.bias"), "\(name) is zero in both (\(np), \(nq))")
                continue
            }
            let diff = norm(zip(p, q).map { $0 - $1 })
            if diff > tolerance * np { out.append("\(name): \(diff / np) of norm \(np)") }
        }
        return out
    }

    /// `--sync-bn`: 2 ranks x batch 16 compute what 1 process x batch 32 does (every tensor
    /// of the checkpoint within 1e-5 of its norm after 3 steps, augmentation and alpha KD
    /// on); without it they do not. Dropout and drop-connect are off: their masks are
    /// drawn per rank, so they cannot match a single process's. The same run cut after 2
    /// steps and resumed alone (the global batch 32 kept: --batch-size follows) matches too.
    @Test(.requires(.mpirun)) func syncBatchNormOnTwoRanksIsOneProcessOfTheGlobalBatch() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 128, valImages: 16)
        let recipe = ["--augment", "train", "--dropout", "0", "--drop-connect", "0", "--total-steps", "6", "--lr", "0.5", "--log-every", "1"]
        let one = try h.run("train-supernet", F.common(h, checkpoint: "one.safetensors.lz4") + recipe + ["--batch-size", "32", "--steps", "3", "--sync-bn"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try Self.run(h, ranks: 2, F.common(h, checkpoint: "two.safetensors.lz4") + recipe + ["--batch-size", "16", "--steps", "3", "--sync-bn"])
        #expect(two.status == 0 && two.stderr.contains("global batch 32 = 2 x --batch-size 16"), "\(two.stderr)")
        let tolerance = 1e-5
        let apart = try Self.differing("one.safetensors.lz4", "two.safetensors.lz4", in: h, tolerance: tolerance)
        #expect(apart == [], "\(apart)")
        // Each rank normalising its own half batch (the default) is a different computation.
        let own = try Self.run(h, ranks: 2, F.common(h, checkpoint: "own.safetensors.lz4") + recipe + ["--batch-size", "16", "--steps", "3"])
        #expect(own.status == 0, "\(own.stderr)")
        #expect(try Self.differing("one.safetensors.lz4", "own.safetensors.lz4", in: h, tolerance: tolerance).count > 10)
        // 2 steps on 2 ranks, the third alone: the global batch stays 32.
        let first = try Self.run(h, ranks: 2, F.common(h, checkpoint: "moved.safetensors.lz4") + recipe + ["--batch-size", "16", "--steps", "2", "--sync-bn"])
        #expect(first.status == 0, "\(first.stderr)")
        let alone = ["--space", h.path("micro.json"), "--data", h.path("train"), "--checkpoint", "moved.safetensors.lz4", "--steps", "3"]
        let refused = try Self.run(h, ranks: 3, alone)
        #expect(refused.status != 0 && refused.stderr.contains("3 ranks cannot split it evenly"), "\(refused.stderr)")
        let second = try h.run("train-supernet", alone)
        #expect(second.status == 0 && second.stderr.contains("resuming moved.safetensors.lz4 at step 2"), "\(second.stderr)")
        let moved = try TensorFile(contentsOf: h.path("moved.safetensors.lz4"))
        #expect(moved.metadata["training"]?.contains(#""batch_size":32"#) == true && moved.metadata["training"]?.contains(#""ranks":1"#) == true)
        let movedApart = try Self.differing("one.safetensors.lz4", "moved.safetensors.lz4", in: h, tolerance: tolerance)
        #expect(movedApart == [], "\(movedApart)")
    }

    /// A space whose BN keeps running statistics in training (bn_momentum 0.1, unlike the
    /// official 0): each rank's would follow its own half batch, so rank 0's are kept, as
    /// DDP's broadcast_buffers does; without that the ranks' states differ and the save
    /// refuses them.
    @Test(.requires(.mpirun)) func runningStatisticsOfTwoRanksAreRankZeros() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        try F.microSpace.replacingOccurrences(of: #""bn_momentum": 0.0"#, with: #""bn_momentum": 0.1"#)
            .write(toFile: h.path("micro.json"), atomically: true, encoding: .utf8)
        let r = try Self.run(h, ranks: 2, F.common(h) + ["--steps", "3", "--log-every", "1"])
        #expect(r.status == 0 && r.lines.count == 3, "\(r.stderr)")
        let file = try TensorFile(contentsOf: h.path("c.safetensors.lz4"))
        let mean = try #require(file.tensors.first { $0.name == "first_conv.bn.bn.running_mean" }?.tensor.floats())
        #expect(mean.contains { $0 != 0 }, "the running mean never moved")
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
