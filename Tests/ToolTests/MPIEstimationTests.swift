import FileFormats
import Foundation
import Testing
import TestSupport

/// estimate-acc as an MPI job (real ranks, `mpirun --oversubscribe`): rank 0 writes
/// exactly the lines one process writes, in input order, and one complete cache.
@Suite(.serialized) struct MPIEstimationTests {
    static func mpirun(_ f: EstimationFixture, ranks: Int, _ extra: [String], stdin: String) throws -> ToolHarness.Result {
        let args = ["mpirun", "--oversubscribe", "-np", String(ranks), ToolHarness.binDir + "/estimate-acc",
                    "--checkpoint", f.checkpoint, "--calib", f.train, "--val", f.val, "--calib-batches", "2", "--batch-size", "8"] + extra
        let r = try ToolHarness.execute("/usr/bin/env", args, in: f.h.dir, stdin: Data(stdin.utf8), environment: MPITrainingTests.environment)
        return ToolHarness.Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
    }

    @Test(.requires(.mpirun)) func ranksPrintWhatOneProcessPrints() throws {
        let f = try EstimationFixture()
        let sampled = try f.h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "3", "--seed", "5", "--unique"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        let input = ([EstimationFixture.minArch, EstimationFixture.otherArch] + sampled.lines).joined(separator: "\n") + "\n"
        // One thread, as each rank has: thread counts change the order of float sums.
        let single = try f.estimate(input, ["--val-limit", "10", "--threads", "1"])
        #expect(single.status == 0 && single.lines.count == 5, "\(single.stderr)")
        // Three ranks: rounds of three and two subnets.
        let three = try Self.mpirun(f, ranks: 3, ["--val-limit", "10", "--cache", "mpi.jsonl"], stdin: input)
        #expect(three.status == 0, "\(three.stderr)")
        #expect(three.lines == single.lines, "\(three.stdout)")
        #expect(three.stderr.contains("5 archs done (0 cached)"), "\(three.stderr)")
        // Rank 0 alone speaks.
        #expect(three.stderr.components(separatedBy: "evaluation transform").count == 2, "\(three.stderr)")
        let cache = try String(contentsOfFile: f.h.path("mpi.jsonl"), encoding: .utf8)
        #expect(cache.split(separator: "\n").count == 5, "\(cache)")
        // Again on two ranks: everything from rank 0's cache, the same lines.
        let two = try Self.mpirun(f, ranks: 2, ["--val-limit", "10", "--cache", "mpi.jsonl"], stdin: input)
        #expect(two.status == 0 && two.stderr.contains("5 archs done (5 cached)"), "\(two.stderr)")
        #expect(two.lines == single.lines)
        #expect(try String(contentsOfFile: f.h.path("mpi.jsonl"), encoding: .utf8) == cache, "the cache changed")
    }

    /// A search on the supernet through more than one process: evo-search with an
    /// evaluator that is an MPI job, and with two estimate-acc co-processes sharing one
    /// cache, sends, logs and finds exactly what one plain estimate-acc gives.
    @Test(.requires(.mpirun)) func evoSearchOnAnMPIEvaluatorOrSeveralFindsWhatOneFinds() throws {
        let f = try EstimationFixture()
        let estimate = "estimate-acc --checkpoint \(f.checkpoint) --calib \(f.train) --val \(f.val) --calib-batches 2 --batch-size 8 --val-limit 10 --threads 1"
        func search(_ evaluator: String, _ extra: [String], log: String) throws -> (ToolHarness.Result, [String]) {
            let args = [ToolHarness.binDir + "/evo-search", "--space", ToolHarness.space("tiny"), "--evaluator", evaluator,
                        "--budget", "8", "--population", "4", "--seed", "2", "--log", log] + extra
            let r = try ToolHarness.execute("/usr/bin/env", args, in: f.h.dir,
                                            environment: MPITrainingTests.environment.merging(["PATH": ToolHarness.binDir + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]) { $1 })
            let logged = (try? String(contentsOfFile: f.h.path(log), encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
            return (ToolHarness.Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr), logged)
        }
        let (one, oneLog) = try search(estimate, [], log: "one.jsonl")
        #expect(one.status == 0 && oneLog.count == 8, "\(one.stderr)")
        let (mpi, mpiLog) = try search("mpirun --oversubscribe -np 2 " + estimate, [], log: "mpi.jsonl")
        #expect(mpi.status == 0, "\(mpi.stderr)")
        #expect(mpi.stdout == one.stdout && mpiLog == oneLog)
        let (pool, poolLog) = try search(estimate + " --cache shared.jsonl", ["--evaluators", "2"], log: "pool.jsonl")
        #expect(pool.status == 0, "\(pool.stderr)")
        #expect(pool.stdout == one.stdout && poolLog == oneLog)
        let cached = try String(contentsOfFile: f.h.path("shared.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(cached.count == 8, "\(cached.count) cache records")
    }

    @Test(.requires(.mpirun)) func aBadLineEndsEveryRankAfterTheLinesBefore() throws {
        let f = try EstimationFixture()
        let input = EstimationFixture.minArch + "\n{\"resolution\": 24, \"width\": [1]}\n" + EstimationFixture.otherArch + "\n"
        let r = try Self.mpirun(f, ranks: 2, ["--val-limit", "10"], stdin: input)
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.lines.count == 1 && r.stderr.contains("<stdin>:2"), "stdout: \(r.stdout)\nstderr: \(r.stderr)")
        let jobs = try Self.mpirun(f, ranks: 2, ["--jobs", "2"], stdin: input)
        #expect(jobs.status == 64 && jobs.stderr.contains("--jobs must be 1 under mpirun"), "\(jobs.stderr)")
    }
}
