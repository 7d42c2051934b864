import FileFormats
import Foundation
import Testing
import TestSupport

/// Runs the built evo-search binary (next to the test bundle, or in
/// .build/debug) in a fresh temporary directory, with fake evaluators
/// written in Python that log every line they are sent.
enum EvoTool {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let space = repo + "/pipelines/spaces/alphanet.json"

    static var binary: String { ToolHarness.binDir + "/evo-search" }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ argv: [String], in dir: String) throws -> Result {
        let r = try ToolHarness.execute(argv[0], Array(argv.dropFirst()), in: dir)
        return Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
    }

    static func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "evo-search-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A fake evaluator: answers each arch with an acc1 from its flops and
    /// depth and a "seen" counter, logging the line to `log`; `mode`
    /// misbehaves on the 25th line (exit, garbage, skip, sleep) or never (ok).
    static let fakeEvaluator = """
        import json, math, sys, time
        mode, log = sys.argv[1], open(sys.argv[2], "a")
        n = 0
        for line in sys.stdin:
            n += 1
            log.write(line); log.flush()
            a = json.loads(line)
            if n == 25:
                if mode == "exit": sys.exit(3)
                if mode == "garbage": print("this is not json", flush=True); continue
                if mode == "skip": continue
                if mode == "sleep": time.sleep(30)
            a["acc1"] = 60 + 4 * math.log(a["flops"] / 200) + 0.05 * sum(a["depth"]) - 0.03 * a["kernel_size"].count(5)
            a["seen"] = n
            print(json.dumps(a), flush=True)
        """

    static func evaluator(_ mode: String, log: String) -> String { "python3 fake.py \(mode) \(log)" }

    static func lines(_ text: String) -> [JSONValue] {
        text.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
    }

    static func lines(file: String) -> [JSONValue] {
        (try? String(contentsOfFile: file, encoding: .utf8)).map { lines($0) } ?? []
    }

    static func archKey(_ v: JSONValue) -> String {
        ["resolution", "width", "depth", "kernel_size", "expand_ratio"].map { v[$0]?.jsonText ?? "?" }.joined(separator: "|")
    }

    /// A front's archs and acc1, without the evaluator's own keys (its
    /// "seen" counter restarts with each process).
    static func front(_ text: String) -> [String] {
        lines(text).map { archKey($0) + "|" + ($0["acc1"]?.jsonText ?? "?") }
    }

    static func stateResults(_ path: String) -> Int? {
        guard let t = try? String(contentsOfFile: path, encoding: .utf8), let v = try? JSONValue.parse(t) else { return nil }
        return v["results"]?.arrayValue?.count
    }
}

@Suite(.serialized) struct EvoSearchToolTests {
    let dir: String

    init() throws {
        dir = try EvoTool.tempDir()
        try EvoTool.fakeEvaluator.write(toFile: dir + "/fake.py", atomically: true, encoding: .utf8)
    }

    func search(_ extra: [String], evaluator: String) throws -> EvoTool.Result {
        try EvoTool.run([EvoTool.binary, "--space", EvoTool.space, "--evaluator", evaluator,
                         "--flops-min", "200", "--flops-max", "1200", "--seed", "3"] + extra, in: dir)
    }

    @Test(.requires(.python3)) func frontIsSortedNonDominatedAndBudgetKept() throws {
        let r = try search(["--budget", "130", "--log", "all.jsonl"], evaluator: EvoTool.evaluator("ok", log: "sent.jsonl"))
        #expect(r.status == 0, "\(r.stderr)")
        let sent = EvoTool.lines(file: dir + "/sent.jsonl")
        #expect(sent.count == 130)
        #expect(Set(sent.map(EvoTool.archKey)).count == 130)
        #expect(EvoTool.lines(file: dir + "/all.jsonl").count == 130)
        let front = EvoTool.lines(r.stdout)
        #expect(!front.isEmpty)
        for l in front {
            #expect(l["acc1"]?.doubleValue != nil && l["flops"]?.doubleValue != nil && l["params"]?.doubleValue != nil && l["seen"] != nil)
        }
        for (a, b) in zip(front, front.dropFirst()) {
            #expect((a["flops"]?.doubleValue ?? 0) < (b["flops"]?.doubleValue ?? 0))
            #expect((a["acc1"]?.doubleValue ?? 0) < (b["acc1"]?.doubleValue ?? 0))
        }
        #expect(r.stderr.contains("evo-search: generation 0:") && r.stderr.contains("HV70"))
    }

    /// `--front-size N` writes N archs of the same search's front, its two ends
    /// included, each a line of the whole front; the progress line says so.
    @Test(.requires(.python3)) func frontSizeWritesASpreadSubsetOfTheFront() throws {
        let whole = try search(["--budget", "130"], evaluator: EvoTool.evaluator("ok", log: "sent-a.jsonl"))
        let thin = try search(["--budget", "130", "--front-size", "4"], evaluator: EvoTool.evaluator("ok", log: "sent-b.jsonl"))
        #expect(whole.status == 0 && thin.status == 0, "\(whole.stderr)\(thin.stderr)")
        let all = EvoTool.front(whole.stdout), kept = EvoTool.front(thin.stdout)
        #expect(all.count > 4)
        #expect(kept.count >= 2 && kept.count <= 4 && kept.first == all.first && kept.last == all.last)
        #expect(kept.allSatisfy(all.contains))
        #expect(thin.stderr.contains("front \(all.count) archs (\(kept.count) written"), "\(thin.stderr)")
        let bad = try search(["--budget", "10", "--front-size", "0"], evaluator: "true")
        #expect(bad.status == 64 && bad.stderr.contains("--front-size"), "\(bad.stderr)")
    }

    /// `--evaluators 3`: three co-processes really start and share the work, and the
    /// search sends, logs and finds exactly what one evaluator gives (the fake is
    /// deterministic apart from its per-process "seen" counter, left out here).
    @Test(.requires(.python3)) func severalEvaluatorsGiveOneEvaluatorsResults() throws {
        let one = try search(["--budget", "120", "--log", "one.jsonl"], evaluator: EvoTool.evaluator("ok", log: "sent1.jsonl"))
        #expect(one.status == 0, "\(one.stderr)")
        let three = try search(["--budget", "120", "--log", "three.jsonl", "--evaluators", "3"],
                               evaluator: "echo $$ >> pids; exec " + EvoTool.evaluator("ok", log: "sent3.jsonl"))
        #expect(three.status == 0, "\(three.stderr)")
        #expect(!EvoTool.front(one.stdout).isEmpty && EvoTool.front(three.stdout) == EvoTool.front(one.stdout))
        let log1 = EvoTool.lines(file: dir + "/one.jsonl").map { EvoTool.archKey($0) + "|" + ($0["acc1"]?.jsonText ?? "?") }
        let log3 = EvoTool.lines(file: dir + "/three.jsonl").map { EvoTool.archKey($0) + "|" + ($0["acc1"]?.jsonText ?? "?") }
        #expect(log1.count == 120 && log3 == log1)
        let pids = try String(contentsOfFile: dir + "/pids", encoding: .utf8).split(separator: "\n")
        #expect(Set(pids).count == 3, "\(pids)")
        // Each process counts its own lines: three of them, so "seen" tops out near 120 / 3.
        let seen = EvoTool.lines(file: dir + "/three.jsonl").compactMap { $0["seen"]?.intValue }
        #expect(seen.count == 120 && (seen.max() ?? 0) <= 45, "max seen \(seen.max() ?? 0)")
        #expect(Set(EvoTool.lines(file: dir + "/sent3.jsonl").map(EvoTool.archKey)) == Set(EvoTool.lines(file: dir + "/sent1.jsonl").map(EvoTool.archKey)))
        // One of them failing fails the search as one evaluator failing does.
        let broken = try search(["--budget", "120", "--evaluators", "2", "--state", "s.json"], evaluator: EvoTool.evaluator("exit", log: "sent4.jsonl"))
        #expect(broken.status == 1 && broken.stderr.contains("exited with status 3"), "\(broken.stderr)")
        #expect((EvoTool.stateResults(dir + "/s.json") ?? 0) >= 24)
        let usage = try search(["--evaluators", "0"], evaluator: EvoTool.evaluator("ok", log: "x.jsonl"))
        #expect(usage.status == 64 && usage.stderr.contains("--evaluators must be at least 1"), "\(usage.stderr)")
    }

    @Test(.requires(.python3)) func officialStartsFromTheMinSubnet() throws {
        let r = try search(["--algorithm", "official", "--population", "20", "--mutate", "8", "--crossover", "8", "--budget", "50"],
                           evaluator: EvoTool.evaluator("ok", log: "sent.jsonl"))
        #expect(r.status == 0, "\(r.stderr)")
        let sent = EvoTool.lines(file: dir + "/sent.jsonl")
        #expect(sent.count == 50)
        #expect(Set(sent.map(EvoTool.archKey)).count == 50)
        #expect(sent.first?["width"] == .array([16, 16, 24, 32, 64, 112, 192, 216, 1792].map { .int($0) }))
        #expect(sent.first?["resolution"] == .int(192))
        #expect(sent.dropFirst().allSatisfy { (200...1200).contains($0["flops"]?.doubleValue ?? 0) })
    }

    @Test(.requires(.python3)) func resumeEvaluatesNothingTwice() throws {
        let a = try search(["--budget", "100", "--state", "s.json"], evaluator: EvoTool.evaluator("ok", log: "sent1.jsonl"))
        #expect(a.status == 0, "\(a.stderr)")
        #expect(EvoTool.stateResults(dir + "/s.json") == 100)
        let b = try search(["--budget", "140", "--state", "s.json"], evaluator: EvoTool.evaluator("ok", log: "sent2.jsonl"))
        #expect(b.status == 0, "\(b.stderr)")
        let first = Set(EvoTool.lines(file: dir + "/sent1.jsonl").map(EvoTool.archKey))
        let second = EvoTool.lines(file: dir + "/sent2.jsonl").map(EvoTool.archKey)
        #expect(second.count == 40)
        #expect(first.isDisjoint(with: second))
        // The same as one uninterrupted run, and a finished search resumed sends nothing.
        let whole = try search(["--budget", "140"], evaluator: EvoTool.evaluator("ok", log: "sent3.jsonl"))
        #expect(EvoTool.front(whole.stdout) == EvoTool.front(b.stdout))
        let again = try search(["--budget", "140", "--state", "s.json"], evaluator: EvoTool.evaluator("ok", log: "sent4.jsonl"))
        #expect(again.status == 0)
        #expect(EvoTool.lines(file: dir + "/sent4.jsonl").isEmpty)
        #expect(again.stdout == b.stdout)
        // Other settings cannot resume it.
        let other = try EvoTool.run([EvoTool.binary, "--space", EvoTool.space, "--evaluator", "true", "--flops-min", "200",
                                     "--flops-max", "1200", "--seed", "4", "--state", "s.json"], in: dir)
        #expect(other.status == 64)
        #expect(other.stderr.contains("seed"))
    }

    @Test(.requires(.python3), arguments: [("exit", "exited with status 3"), ("garbage", "not JSON"), ("skip", "another arch"), ("sleep", "timeout")])
    func misbehavingEvaluator(mode: String, reason: String) throws {
        let r = try search(["--budget", "60", "--state", "s.json", "--evaluator-timeout", "2"],
                           evaluator: EvoTool.evaluator(mode, log: "sent.jsonl"))
        #expect(r.status == 1)
        let sent = EvoTool.lines(file: dir + "/sent.jsonl")
        #expect(sent.count >= 25)
        let inFlight = sent[24]
        #expect(r.stderr.contains("evo-search: error:"), "\(r.stderr)")
        #expect(r.stderr.contains(reason), "\(r.stderr)")
        // The arch in flight is named by its JSON line.
        #expect(r.stderr.contains(inFlight.jsonText), "\(r.stderr)")
        #expect(EvoTool.stateResults(dir + "/s.json") == 24)
        #expect(!EvoTool.lines(r.stdout).isEmpty)

        if mode == "exit" {
            // Resumed with a working evaluator: none of the 24 answered archs
            // is sent again, and the result is the uninterrupted run's.
            let resumed = try search(["--budget", "130", "--state", "s.json"], evaluator: EvoTool.evaluator("ok", log: "sent2.jsonl"))
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let answered = Set(sent.prefix(24).map(EvoTool.archKey))
            let resent = EvoTool.lines(file: dir + "/sent2.jsonl").map(EvoTool.archKey)
            #expect(resent.count == 130 - 24)
            #expect(answered.isDisjoint(with: resent))
            let whole = try search(["--budget", "130"], evaluator: EvoTool.evaluator("ok", log: "sent3.jsonl"))
            #expect(EvoTool.front(whole.stdout) == EvoTool.front(resumed.stdout))
        }
    }

    /// With -o FILE, a failed search leaves nothing under FILE: the front so far goes to
    /// FILE.partial, which the error names.
    @Test(.requires(.python3)) func failedSearchWritesItsFrontAsPartial() throws {
        let r = try search(["--budget", "60", "-o", "front.jsonl"], evaluator: EvoTool.evaluator("exit", log: "sent.jsonl"))
        #expect(r.status == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/front.jsonl"))
        #expect(!EvoTool.lines(file: dir + "/front.jsonl.partial").isEmpty)
        #expect(r.stderr.contains("written to front.jsonl.partial"), "\(r.stderr)")
    }

    @Test func usageErrors() throws {
        let both = try EvoTool.run([EvoTool.binary, "--space", EvoTool.space, "--evaluator", "true", "--predictor", "p.json"], in: dir)
        #expect(both.status == 64)
        let neither = try EvoTool.run([EvoTool.binary, "--space", EvoTool.space], in: dir)
        #expect(neither.status == 64)
        let algo = try EvoTool.run([EvoTool.binary, "--space", EvoTool.space, "--evaluator", "true", "--algorithm", "magic"], in: dir)
        #expect(algo.status == 64)
        #expect(algo.stderr.hasPrefix("evo-search: error:"))
    }

    /// `--objective latency`: the front is in the table's predicted milliseconds, within
    /// --latency-max, sorted and non-dominated on them, each value the table's prediction.
    @Test(.requires(.python3)) func latencyObjectiveSearchesUnderPredictedLatency() throws {
        let h = try ToolHarness()
        let tiny = ToolHarness.space("tiny")
        try EvoTool.fakeEvaluator.write(toFile: h.path("fake.py"), atomically: true, encoding: .utf8)
        let table = try h.shell("sample-subnets --space \(tiny) --min --max -n 6 --seed 3 | measure-latency --space \(tiny) --batch 1 --warmup 0 --repeat 1 --threads 1 --table-out t.json > /dev/null")
        #expect(table.status == 0, "\(table.stderr)")
        let ends = try h.shell("sample-subnets --space \(tiny) --min --max | measure-latency --space \(tiny) --table t.json")
        let ms = ends.lines.compactMap { try? JSONValue.parse($0)["latency_ms_pred"]?.doubleValue }
        try #require(ms.count == 2 && ms[0] < ms[1], "\(ends.stdout)")
        let limit = (ms[0] + ms[1]) / 2
        let r = try h.run("evo-search", ["--space", tiny, "--evaluator", "python3 fake.py ok log.jsonl", "--objective", "latency", "--latency-table", "t.json",
                                         "--latency-max", String(limit), "--budget", "60", "--seed", "2"])
        #expect(r.status == 0 && r.stderr.contains("objective: predicted latency"), "\(r.stderr)")
        let front = r.lines.compactMap { try? JSONValue.parse($0) }
        #expect(front.count >= 2, "\(r.stdout)")
        let lat = front.map { $0["latency_ms_pred"]?.doubleValue ?? .infinity }, acc = front.map { $0["acc1"]?.doubleValue ?? -1 }
        #expect(lat.allSatisfy { $0 <= limit } && lat == lat.sorted() && acc == acc.sorted() && Set(acc).count == acc.count, "\(lat) \(acc)")
        // Each value is what measure-latency --table predicts for the arch.
        try Data((r.stdout).utf8).write(to: URL(fileURLWithPath: h.path("front.jsonl")))
        let again = try h.shell("measure-latency --space \(tiny) --table t.json < front.jsonl")
        let predicted = again.lines.compactMap { try? JSONValue.parse($0)["latency_ms_pred"]?.doubleValue }
        #expect(predicted.count == lat.count && zip(predicted, lat).allSatisfy { abs($0 - $1) < 1e-3 })
        // With a state: a run cut at 30 evaluations and resumed to 60 gives the same front,
        // and a flops search cannot resume it.
        let args = ["--space", tiny, "--evaluator", "python3 fake.py ok log2.jsonl", "--objective", "latency", "--latency-table", "t.json",
                    "--latency-max", String(limit), "--seed", "2", "--state", "s.json"]
        let part = try h.run("evo-search", args + ["--budget", "30"])
        let rest = try h.run("evo-search", args + ["--budget", "60"])
        #expect(part.status == 0 && rest.status == 0 && rest.stderr.contains("resuming from s.json: 30"), "\(part.stderr)\(rest.stderr)")
        #expect(EvoTool.front(rest.stdout) == EvoTool.front(r.stdout), "resumed latency search differs from one run")
        let flops = try h.run("evo-search", ["--space", tiny, "--evaluator", "python3 fake.py ok log3.jsonl", "--seed", "2", "--state", "s.json", "--budget", "60"])
        #expect(flops.status != 0 && flops.stderr.contains("objective"), "\(flops.stderr)")
        // Misuse is a usage error.
        for bad in [["--objective", "latency"], ["--objective", "latency", "--latency-table", "t.json", "--flops-max", "20"],
                    ["--objective", "latency", "--latency-table", "t.json", "--algorithm", "official"], ["--latency-max", "3"]] {
            let u = try h.run("evo-search", ["--space", tiny, "--evaluator", "true"] + bad)
            #expect(u.status == 64 && u.stderr.contains("latency"), "\(bad): \(u.stderr)")
        }
    }

    /// A predictor fitted by fit-predictor drives the search in-process.
    @Test(.requires(.python3), .requires(.oracle)) func predictorFileAsEvaluator() throws {
        let h = try ToolHarness()
        let fit = try h.shell("sample-subnets --space \(EvoTool.space) -n 120 --seed 5 | python3 \(Paths.oracle) > train.jsonl && fit-predictor --folds 3 -o p.json < train.jsonl")
        #expect(fit.status == 0, "\(fit.stderr)")
        let r = try h.run("evo-search", ["--space", EvoTool.space, "--predictor", "p.json", "--budget", "300", "--flops-min", "200", "--flops-max", "600", "--population", "64", "--mutate", "32", "--crossover", "32"])
        #expect(r.status == 0, "\(r.stderr)")
        let front = r.lines.compactMap { try? JSONValue.parse($0) }
        #expect(front.count >= 3)
        #expect(front.allSatisfy { ($0["acc1"]?.doubleValue ?? 0) > 50 && ($0["flops"]?.doubleValue ?? 0) <= 600 })
        try "{\"format\":\"something\"}".write(toFile: h.path("bad.json"), atomically: true, encoding: .utf8)
        let bad = try h.run("evo-search", ["--space", EvoTool.space, "--predictor", "bad.json"])
        #expect(bad.status == 65)
        #expect(bad.stderr.hasPrefix("evo-search: error: bad.json:"))
    }
}
