import FileFormats
import Foundation
import Testing

/// Runs the built fit-predictor, predict-acc and sample-subnets binaries (found
/// next to the test bundle) in a fresh temporary directory.
struct PredictorToolSandbox {
    let directory: URL
    let binaries: URL

    init() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        binaries = exe.deletingLastPathComponent()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("predictor-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws { try text.write(toFile: path(name), atomically: true, encoding: .utf8) }

    func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    /// Runs `tool args` with `stdin` from a file in the sandbox (or nothing).
    func run(_ tool: String, _ args: [String], stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let input = try stdin.map { try Data(contentsOf: URL(fileURLWithPath: path($0))) }
        let r = try ToolHarness.execute(binaries.appendingPathComponent(tool).path, args, in: directory.path, stdin: input)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    /// `count` arch lines of the official space with a made-up acc1 and an extra key, in `name`.
    func evaluatedArchs(_ name: String, count: Int, seed: Int = 1) throws {
        let space = binaries.appendingPathComponent("../../../pipelines/spaces/alphanet.json").standardized.path
        let r = try run("sample-subnets", ["--space", space, "-n", "\(count)", "--seed", "\(seed)", "--unique"])
        #expect(r.status == 0, "\(r.stderr)")
        var text = ""
        for line in r.stdout.split(separator: "\n") {
            let arch = try JSONValue.parse(String(line))
            let depth = (arch["depth"]?.arrayValue ?? []).compactMap(\.doubleValue).reduce(0, +)
            let res = arch["resolution"]?.doubleValue ?? 0
            let acc = 60 + 0.3 * depth + 0.02 * res + 0.001 * (arch["width"]?.arrayValue?.last?.doubleValue ?? 0)
            text += arch.with("acc1", .double(acc)).with("note", .string("kept")).jsonText + "\n"
        }
        try write(name, text)
    }
}

@Suite struct PredictorToolTests {
    @Test func fitThenPredictKeepsEveryKey() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("train.jsonl", count: 60)
        try box.evaluatedArchs("test.jsonl", count: 20, seed: 2)
        let fit = try box.run("fit-predictor", ["--trees", "60", "--folds", "3", "-o", "p.json"], stdin: "train.jsonl")
        #expect(fit.status == 0, "\(fit.stderr)")
        #expect(fit.stdout.isEmpty)
        #expect(fit.stderr.hasPrefix("fit-predictor: gbdt on 60 lines") && fit.stderr.contains("kendall_tau"))
        let file = try JSONValue.parse(try box.read("p.json"))
        #expect(file["format"] == .string("alphanet-predictor") && file["version"] == .int(1) && file["target"] == .string("acc1"))
        #expect(file["trained_on"] == .int(60) && file["cv"]?["folds"] == .int(3) && file["cv"]?["kendall_tau"]?.doubleValue != nil)
        #expect(file["features"]?.arrayValue?.count == 31)

        let pred = try box.run("predict-acc", ["--predictor", "p.json", "test.jsonl"])
        #expect(pred.status == 0, "\(pred.stderr)")
        #expect(pred.stderr.isEmpty)
        let input = try box.read("test.jsonl").split(separator: "\n")
        let output = pred.stdout.split(separator: "\n")
        #expect(output.count == input.count)
        for (i, o) in zip(input, output) {
            let a = try JSONValue.parse(String(i)), b = try JSONValue.parse(String(o))
            let keysIn = a.objectValue?.map(\.0) ?? [], keysOut = b.objectValue?.map(\.0) ?? []
            #expect(keysOut == keysIn + ["acc1_pred"])
            #expect(b["note"] == .string("kept") && b["acc1"] == a["acc1"])
            let p = try #require(b["acc1_pred"]?.doubleValue)
            #expect(p > 50 && p < 80)
        }
    }

    @Test func sameSeedGivesTheSameFile() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("train.jsonl", count: 30)
        for (name, model) in [("a", "rf"), ("b", "rf"), ("c", "ridge"), ("d", "ridge")] {
            let r = try box.run("fit-predictor", ["--model", model, "--trees", "10", "--seed", "7", "-o", "\(name).json", "train.jsonl"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try box.read("a.json") == box.read("b.json"))
        #expect(try box.read("c.json") == box.read("d.json"))
    }

    @Test func tooFewLinesIsBadData() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("train.jsonl", count: 7)
        let r = try box.run("fit-predictor", ["-o", "p.json"], stdin: "train.jsonl")
        #expect(r.status == 65)
        #expect(r.stderr.contains("fit-predictor: error:") && r.stderr.contains("only 7 lines") && r.stderr.contains("at least 10"))
        #expect(!FileManager.default.fileExists(atPath: box.path("p.json")))
    }

    @Test func missingTargetNamesTheLine() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("train.jsonl", count: 20)
        var lines = try box.read("train.jsonl").split(separator: "\n").map(String.init)
        lines[2] = try JSONValue.parse(lines[2]).with("acc1", .null).jsonText.replacingOccurrences(of: "\"acc1\":null,", with: "")
        try box.write("train.jsonl", lines.joined(separator: "\n") + "\n")
        let r = try box.run("fit-predictor", ["-o", "p.json", "train.jsonl"])
        #expect(r.status == 65)
        #expect(r.stderr.contains("train.jsonl:3: missing target key 'acc1'"), "\(r.stderr)")
        let other = try box.run("fit-predictor", ["--target", "acc5", "-o", "p.json", "train.jsonl"])
        #expect(other.status == 65 && other.stderr.contains(":1: missing target key 'acc5'"))
    }

    @Test func badPredictorFilesAreBadData() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("archs.jsonl", count: 12)
        try box.write("garbage.json", "{not json")
        let g = try box.run("predict-acc", ["--predictor", "garbage.json", "archs.jsonl"])
        #expect(g.status == 65 && g.stderr.contains("predict-acc: error: garbage.json:"))

        let fit = try box.run("fit-predictor", ["--model", "ridge", "-o", "p.json", "archs.jsonl"])
        #expect(fit.status == 0, "\(fit.stderr)")
        let v2 = try JSONValue.parse(try box.read("p.json")).with("version", .int(2))
        try box.write("v2.json", v2.prettyText())
        let r = try box.run("predict-acc", ["--predictor", "v2.json", "archs.jsonl"])
        #expect(r.status == 65)
        #expect(r.stderr.contains("version 2 is not supported") && r.stderr.contains("refit"), "\(r.stderr)")

        let missing = try box.run("predict-acc", ["--predictor", "nowhere.json", "archs.jsonl"])
        #expect(missing.status != 0 && missing.stderr.contains("nowhere.json"))
    }

    @Test func badArchLineAndBadUsage() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("archs.jsonl", count: 12)
        let fit = try box.run("fit-predictor", ["--model", "ridge", "-o", "p.json", "archs.jsonl"])
        #expect(fit.status == 0)
        try box.write("bad.jsonl", "{\"resolution\":224,\"width\":[1,2]}\n")
        let r = try box.run("predict-acc", ["--predictor", "p.json", "bad.jsonl"])
        #expect(r.status == 65 && r.stderr.contains("bad.jsonl:1: width"), "\(r.stderr)")
        let u = try box.run("fit-predictor", ["--model", "svm", "-o", "p.json"])
        #expect(u.status == 64 && u.stderr.contains("--model"))
        let f = try box.run("fit-predictor", ["--folds", "1", "-o", "p.json"])
        #expect(f.status == 64)
    }

    @Test func mlpFitsAndPredictsThroughTheTools() throws {
        let box = try PredictorToolSandbox()
        defer { box.remove() }
        try box.evaluatedArchs("archs.jsonl", count: 40)
        let fit = try box.run("fit-predictor", ["--model", "mlp", "--hidden", "8,8", "--steps", "50", "--folds", "2", "-o", "p.json", "archs.jsonl"])
        #expect(fit.status == 0 && fit.stderr.contains("mlp on 40 lines"), "\(fit.stderr)")
        let text = try box.read("p.json")
        #expect(text.contains("\"model\": \"mlp\"") && text.contains("\"layers\""))
        let r = try box.run("predict-acc", ["--predictor", "p.json", "archs.jsonl"])
        #expect(r.status == 0 && r.stdout.split(separator: "\n").count == 40, "\(r.stderr)")
        let bad = try box.run("fit-predictor", ["--model", "mlp", "--activation", "sigmoid", "-o", "q.json", "archs.jsonl"])
        #expect(bad.status == 64 && bad.stderr.contains("--activation"))
    }
}
