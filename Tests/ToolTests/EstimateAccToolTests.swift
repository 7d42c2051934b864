import FileFormats
import Foundation
import Testing

@Suite("estimate-acc tool", .serialized)
struct EstimateAccToolTests {
    @Test func enrichesLinesInOrderKeepingKeys() throws {
        let f = try EstimationFixture()
        let b = String(EstimationFixture.otherArch.dropLast()) + #","id":"b","acc1":-1}"#
        let a0 = String(EstimationFixture.minArch.dropLast()) + #","id":"a"}"#
        let r = try f.estimate(b + "\n" + a0 + "\n", ["--jobs", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.count == 2)
        let a = try r.lines.map { try EstimationFixture.object($0) }
        #expect(a[0]["id"]?.stringValue == "b" && a[1]["id"]?.stringValue == "a")
        for line in a {
            let acc1 = try #require(line["acc1"]?.doubleValue)
            #expect(acc1 >= 0 && acc1 <= 100)
            #expect((line["acc5"]?.doubleValue ?? -1) >= acc1)
            #expect(line["loss"]?.doubleValue != nil && line["flops"]?.doubleValue != nil && line["params"]?.doubleValue != nil)
            #expect(line["val_images"]?.intValue == 20)
            #expect(line["calib_images"]?.intValue == 16)
            #expect(line["checkpoint_sha256"]?.stringValue?.count == 64)
            #expect(line["val_sha256"]?.stringValue?.count == 64)
        }
        #expect(r.stderr.contains("2 archs done"))
    }

    @Test func cacheAvoidsRecomputationAndSurvivesTornLines() throws {
        let f = try EstimationFixture()
        let cache = f.h.path("acc.cache")
        let first = try f.estimate(EstimationFixture.minArch + "\n", ["--cache", cache, "--val-limit", "10"])
        #expect(first.status == 0, "\(first.stderr)")
        // A torn record (a killed writer) at the end must be ignored.
        let handle = try #require(FileHandle(forWritingAtPath: cache))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"checkpoint_sha256":"ab","settings":{"#.utf8))
        try handle.close()
        let second = try f.estimate(EstimationFixture.minArch + "\n" + EstimationFixture.otherArch + "\n", ["--cache", cache, "--val-limit", "10"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("2 archs done (1 cached)"))
        #expect(second.lines.first.map { try? EstimationFixture.object($0)["acc1"] } == first.lines.first.map { try? EstimationFixture.object($0)["acc1"] })
        // Another validation limit is another key.
        let third = try f.estimate(EstimationFixture.minArch + "\n", ["--cache", cache, "--val-limit", "12"])
        #expect(third.stderr.contains("(0 cached)"))
        // The record appended after the torn line was not glued onto it: both archs are cached.
        let fourth = try f.estimate(EstimationFixture.minArch + "\n" + EstimationFixture.otherArch + "\n", ["--cache", cache, "--val-limit", "10"])
        #expect(fourth.stderr.contains("2 archs done (2 cached)"), "\(fourth.stderr)")
        let text = try String(contentsOfFile: cache, encoding: .utf8)
        #expect(text.hasSuffix("\n") && text.split(separator: "\n").count == 4, "\(text)")
    }

    /// A job array without MPI: --shard i/n prints its lines of the input, in order and
    /// as one process prints them; merging the tasks' caches then answers every line
    /// from the cache, in input order.
    @Test func shardsAndMergedCachesGiveWhatOneProcessGives() throws {
        let f = try EstimationFixture()
        let sampled = try f.h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "3", "--seed", "5", "--unique"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        let lines = [EstimationFixture.minArch, EstimationFixture.otherArch] + sampled.lines
        let input = lines.joined(separator: "\n") + "\n"
        let whole = try f.estimate(input, ["--val-limit", "10"])
        #expect(whole.status == 0 && whole.lines.count == 5, "\(whole.stderr)")
        var parts: [[String]] = []
        for i in 0..<2 {
            let r = try f.estimate(input, ["--val-limit", "10", "--shard", "\(i)/2", "--cache", "c\(i).jsonl"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains(i == 0 ? "3 archs done (0 cached)" : "2 archs done (0 cached)") && r.stderr.contains(i == 0 ? "2 left to other shards" : "3 left to other shards"), "\(r.stderr)")
            parts.append(r.lines)
        }
        #expect(parts[0] == [whole.lines[0], whole.lines[2], whole.lines[4]])
        #expect(parts[1] == [whole.lines[1], whole.lines[3]])
        let merged = try f.estimate(input, ["--val-limit", "10", "--cache", "all.jsonl", "--merge-cache", "c0.jsonl", "--merge-cache", "c1.jsonl"])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stderr.contains("merged 3 records of c0.jsonl into all.jsonl") && merged.stderr.contains("merged 2 records of c1.jsonl"), "\(merged.stderr)")
        #expect(merged.stderr.contains("5 archs done (5 cached)"), "\(merged.stderr)")
        #expect(merged.lines == whole.lines)
        // Merging again adds nothing.
        let again = try f.estimate(input, ["--val-limit", "10", "--cache", "all.jsonl", "--merge-cache", "c0.jsonl"])
        #expect(again.stderr.contains("merged 0 records of c0.jsonl"), "\(again.stderr)")
    }

    @Test(arguments: [["--shard", "2/2"], ["--shard", "0/0"], ["--shard", "a/b"], ["--shard", "1"], ["--merge-cache", "x.jsonl"]])
    func badShardOrMergeIsAUsageError(args: [String]) throws {
        let f = try EstimationFixture()
        let r = try f.estimate(EstimationFixture.minArch + "\n", args)
        #expect(r.status == 64 && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// A full disk under the cache: exit 1 saying so, the lines before it written, a torn
    /// last record at worst; the next run (space freed) repairs the tail and loses no
    /// record. On a 12 KiB tmpfs with 8 KiB taken.
    @Test(.requires(.tmpfs)) func fullDiskCacheSaysSoAndTheNextRunRepairsIt() throws {
        let f = try EstimationFixture()
        let mnt = f.h.path("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mount = try ToolHarness.execute("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", mnt], in: f.h.dir)
        try #require(mount.status == 0, "\(mount.stderr)")
        defer { _ = try? ToolHarness.execute("/usr/bin/env", ["umount", mnt], in: f.h.dir) }
        try Data(count: 8192).write(to: URL(fileURLWithPath: mnt + "/filler"))
        let sampled = try f.h.run("sample-subnets", ["--space", ToolHarness.space("tiny"), "-n", "8", "--seed", "3", "--unique"])
        let input = sampled.lines.joined(separator: "\n") + "\n"
        #expect(sampled.lines.count == 8)
        let full = try f.estimate(input, ["--val-limit", "8", "--cache", mnt + "/cache.jsonl"])
        #expect(full.status == 1 && full.stderr.contains("cache.jsonl: cannot append to the cache: no space left on device"), "\(full.stderr)")
        let written = full.lines.count
        #expect(written >= 1 && written < 8, "\(written) lines before the disk was full")
        try FileManager.default.removeItem(atPath: mnt + "/filler")
        let next = try f.estimate(input, ["--val-limit", "8", "--cache", mnt + "/cache.jsonl"])
        #expect(next.status == 0 && next.stderr.contains("8 archs done (\(written) cached)"), "\(next.stderr)")
        #expect(Array(next.lines.prefix(written)) == full.lines)
        let again = try f.estimate(input, ["--val-limit", "8", "--cache", mnt + "/cache.jsonl"])
        #expect(again.stderr.contains("8 archs done (8 cached)"), "\(again.stderr)")
        #expect(again.lines == next.lines)
    }

    /// A cache that is not a regular file (a device never ends when read) is refused.
    @Test func cacheMustBeARegularFile() throws {
        let f = try EstimationFixture()
        for path in ["/dev/full", "/dev/zero"] {
            let r = try f.estimate(EstimationFixture.minArch + "\n", ["--cache", path, "--val-limit", "10"])
            #expect(r.status == 64 && r.stderr.contains(path) && r.stderr.contains("regular file"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    @Test func malformedLineStopsAfterEarlierLines() throws {
        let f = try EstimationFixture()
        let r = try f.estimate(EstimationFixture.minArch + "\n{\"resolution\": 24, \"width\": [1]}\n" + EstimationFixture.minArch + "\n", ["--val-limit", "8"])
        #expect(r.status == 65)
        #expect(r.lines.count == 1)
        #expect(r.stderr.contains("<stdin>:2"))
        let bad = try f.estimate(#"{"resolution":24,"width":[8,8,16,24,32,48,64,80,999],"depth":[1,2,2,2,2,2,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,3,3,3,3,3,3]}"# + "\n")
        #expect(bad.status == 65)
        #expect(bad.stderr.contains("<stdin>:1") && bad.stderr.contains("width[8]"))
    }

    @Test func badFilesGiveOneLineErrors() throws {
        let f = try EstimationFixture()
        let arch = EstimationFixture.minArch + "\n"
        let missing = try f.h.run("estimate-acc", ["--checkpoint", f.h.path("nope.lz4"), "--calib", f.train, "--val", f.val], stdin: arch)
        #expect(missing.status == 1 && missing.stderr.contains("nope.lz4"))
        try Data("not a tensor file".utf8).write(to: URL(fileURLWithPath: f.h.path("junk.safetensors")))
        let junk = try f.h.run("estimate-acc", ["--checkpoint", f.h.path("junk.safetensors"), "--calib", f.train, "--val", f.val], stdin: arch)
        #expect(junk.status == 65 && junk.stderr.contains("junk.safetensors"))
        // The checkpoint read with another space: tensors do not fit.
        let other = try f.h.run("estimate-acc", ["--checkpoint", f.checkpoint, "--space", ToolHarness.space("alphanet"), "--calib", f.train, "--val", f.val], stdin: arch)
        #expect(other.status == 65 && other.stderr.contains("does not fit the space"))
        // A corrupt shard and a missing shard directory.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: f.h.path("val/val-00001.safetensors.lz4")))
        let corrupt = try f.estimate(arch)
        #expect(corrupt.status == 65 && corrupt.stderr.contains("val-00001"))
        let gone = try f.h.run("estimate-acc", ["--checkpoint", f.checkpoint, "--calib", f.h.path("none"), "--val", f.val], stdin: arch)
        #expect(gone.status == 1 && gone.stderr.contains("none"))
        for r in [missing, junk, other, corrupt, gone] { #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)") }
    }

    /// As an evo-search co-process: each line is answered before stdin ends.
    @Test func answersEachLineBeforeEndOfInput() throws {
        let f = try EstimationFixture()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ToolHarness.binDir + "/estimate-acc")
        p.arguments = ["--checkpoint", f.checkpoint, "--calib", f.train, "--val", f.val, "--calib-batches", "1", "--batch-size", "8", "--val-limit", "8"]
        let inp = Pipe(), out = Pipe()
        p.standardInput = inp
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var received = Data()
        for _ in 0..<2 {
            inp.fileHandleForWriting.write(Data((EstimationFixture.minArch + "\n").utf8))
            while !received.contains(0x0A) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                received.append(chunk)
            }
            #expect(received.contains(0x0A), "no answer while stdin is open")
            received = Data(received.drop(while: { $0 != 0x0A }).dropFirst())
        }
        try inp.fileHandleForWriting.close()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}
