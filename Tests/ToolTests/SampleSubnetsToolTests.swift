import FileFormats
import Foundation
import Testing

@Suite struct SampleSubnetsToolTests {
    @Test func sampleIsDeterministicAndHasCosts() throws {
        let h = try ToolHarness()
        let a = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "20", "--seed", "3"])
        let b = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "20", "--seed", "3"])
        let c = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "20", "--seed", "4"])
        #expect(a.status == 0 && a.stderr.isEmpty)
        #expect(a.lines.count == 20)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout != c.stdout)
        for line in a.lines {
            let v = try JSONValue.parse(line)
            #expect(v.objectValue?.map(\.0) == ["resolution", "width", "depth", "kernel_size", "expand_ratio", "flops", "params"])
            #expect((v["flops"]?.doubleValue ?? 0) > 4)
        }
    }

    @Test func minMaxAndFlopsBounds() throws {
        let h = try ToolHarness()
        let r = try h.run("sample-subnets", ["--space", ToolHarness.space("alphanet"), "--min", "--max"])
        #expect(r.lines.count == 2)
        let minLine = try JSONValue.parse(r.lines[0])
        #expect(minLine["flops"]?.doubleValue == 203.3896)
        let b = try h.run("sample-subnets", ["--space", ToolHarness.space("alphanet"), "-n", "50", "--flops-min", "300", "--flops-max", "400", "--unique"])
        #expect(b.status == 0)
        #expect(Set(b.lines.map { line in line.split(separator: ",\"flops\"")[0] }).count == 50)
        for line in b.lines {
            let f = try #require(try JSONValue.parse(line)["flops"]?.doubleValue)
            #expect(f >= 300 && f <= 400)
        }
    }

    @Test func impossibleBoundsFailClearlyWithoutHanging() throws {
        let h = try ToolHarness()
        let r = try h.run("sample-subnets", ["--space", ToolHarness.space("alphanet"), "--flops-max", "100", "--max-tries", "2000"])
        #expect(r.status == 65)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("sample-subnets: error:"))
        #expect(r.stderr.contains("203.4-1939.3 MFLOPs"))
        // --unique on a space too small for -n.
        let tiny = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "--min", "--max", "-n", "0"])
        #expect(tiny.lines.count == 2)
    }

    @Test func usageErrorsExit64() throws {
        let h = try ToolHarness()
        let r = try h.run("sample-subnets", ["-n", "3"])
        #expect(r.status == 64)
        #expect(r.stderr.hasPrefix("sample-subnets: error:"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        let bounds = try h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "--flops-min", "9", "--flops-max", "1"])
        #expect(bounds.status == 64)
        let help = try h.run("sample-subnets", ["--help"])
        #expect(help.status == 0 && help.stdout.contains("--flops-max"))
    }

    @Test func badSpaceFileIsBadData() throws {
        let h = try ToolHarness()
        try "{\"supernet_config\": {\"resolutions\": [32]}}".write(toFile: h.path("bad.json"), atomically: true, encoding: .utf8)
        let r = try h.run("sample-subnets", ["--space", "bad.json"])
        #expect(r.status == 65)
        #expect(r.stderr == "sample-subnets: error: bad.json: missing stage first_conv\n")
    }

    @Test func closedPipeEndsQuietly() throws {
        let h = try ToolHarness()
        let r = try h.shell("sample-subnets --space \(ToolHarness.space("tiny")) -n 1000000 | head -1")
        #expect(r.status == 0)
        #expect(r.lines.count == 1)
        #expect(r.stderr.isEmpty)
    }
}

@Suite struct CountFlopsToolTests {
    @Test func filterKeepsForeignKeysAndSetsCosts() throws {
        let h = try ToolHarness()
        let input = #"{"id":"a0","resolution":192,"width":[16,16,24,32,64,112,192,216,1792],"depth":[1,3,3,3,3,3,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,4,4,4,4,6,6],"flops":1,"acc1":77.5}"# + "\n\n"
        let r = try h.run("count-flops", ["--space", ToolHarness.space("alphanet")], stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.count == 1)
        let v = try JSONValue.parse(r.lines[0])
        #expect(v.objectValue?.map(\.0) == ["id", "resolution", "width", "depth", "kernel_size", "expand_ratio", "flops", "acc1", "params"])
        #expect(v["flops"]?.doubleValue == 203.3896)
        #expect(v["params"]?.doubleValue == 9.0646)
        #expect(v["acc1"] == .double(77.5))
    }

    @Test func malformedLinesNameLineAndField() throws {
        let h = try ToolHarness()
        let good = #"{"resolution":32,"width":[8,8,16,24,32,48,64,80,256],"depth":[1,2,2,2,2,2,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,3,3,3,3,3,3]}"#
        let outside = good.replacingOccurrences(of: "\"kernel_size\":[3,3,3", with: "\"kernel_size\":[3,3,7")
        let r = try h.run("count-flops", ["--space", ToolHarness.space("tiny")], stdin: good + "\n" + outside + "\n")
        #expect(r.status == 65)
        #expect(r.lines.count == 1, "lines before the bad one are written")
        #expect(r.stderr == "count-flops: error: <stdin>:2: kernel_size[2]: 7 is not in the space's [3, 5]\n")
        let broken = try h.run("count-flops", ["--space", ToolHarness.space("tiny")], stdin: "{\"resolution\": 32,\n")
        #expect(broken.status == 65)
        #expect(broken.stderr.hasPrefix("count-flops: error: <stdin>:1: invalid JSON"))
        try (good + "\n").write(toFile: h.path("in.jsonl"), atomically: true, encoding: .utf8)
        let fromFile = try h.run("count-flops", ["--space", ToolHarness.space("tiny"), "in.jsonl"])
        #expect(fromFile.status == 0 && fromFile.lines.count == 1)
        let missing = try h.run("count-flops", ["--space", ToolHarness.space("tiny"), "nope.jsonl"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.jsonl"))
    }
}
