import System
import FileFormats
import Foundation
import Testing

/// Runs the built pack-imagenet in a fresh temporary directory.
struct PackRun {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String

    static var binary: String { ToolHarness.binDir + "/pack-imagenet" }

    static func run(_ args: [String], in dir: URL) throws -> PackRun {
        let r = try ToolHarness.execute(binary, args, in: dir.path)
        return PackRun(status: r.status, stdout: [UInt8](r.stdout), stderr: r.stderr)
    }
}

/// A fresh directory with an ImageFolder tree: two classes, a PNG named .JPEG,
/// a greyscale JPEG, and optionally a truncated JPEG and a text file.
struct PackWorkspace {
    let dir: URL

    init(bad: Bool = true) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pack-imagenet-test-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("folder/n02/sub"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent("folder/n01"), withIntermediateDirectories: true)
        try write("folder/n01/a.JPEG", PackFixtures.rgbJPEG)
        try write("folder/n01/b.JPEG", PackFixtures.rgbPNG)
        try write("folder/n02/c.JPEG", PackFixtures.greyJPEG)
        try write("folder/n02/sub/d.JPEG", PackFixtures.rgbJPEG)
        if bad {
            try write("folder/n01/broken.JPEG", Array(PackFixtures.rgbJPEG.prefix(300)))
            try write("folder/n02/readme.txt", Array("not an image\n".utf8))
        }
    }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: dir.appendingPathComponent(path))
    }

    func path(_ p: String) -> String { dir.appendingPathComponent(p).path }

    func run(_ args: [String]) throws -> PackRun { try PackRun.run(args, in: dir) }

    func shards(_ out: String) throws -> [TensorFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path(out)).filter { $0.hasSuffix(".safetensors.lz4") }.sorted()
        return try names.map { try TensorFile(contentsOf: path(out) + "/" + $0) }
    }

    func index(_ out: String) throws -> JSONValue {
        try JSONValue.parse(String(decoding: try readWholeFile(path(out) + "/index.json"), as: UTF8.self))
    }

    /// Names in the workspace root that look like leftovers of an interrupted write.
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") || $0.contains(".old-") }
    }

    func tar(_ name: String, _ members: [String], cwd: String = ".") throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        p.arguments = ["-cf", path(name), "-C", path(cwd)] + members
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    func labels(_ shards: [TensorFile]) -> [Int] { shards.flatMap { $0["labels"]?.ints() ?? [] } }

    func remove() { try? FileManager.default.removeItem(at: dir) }
}

@Suite("pack-imagenet")
struct PackImagenetTests {
    @Test func imageFolderDirectorySkipsBadFilesAndRecordsThem() throws {
        let ws = try PackWorkspace()
        defer { ws.remove() }
        let r = try ws.run(["--size", "16", "--shard-size", "3", "--jobs", "2", "-o", "out", "folder"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let warnings = r.stderr.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings.count == 2)
        #expect(warnings.contains { $0.hasPrefix("pack-imagenet: warning: ") && $0.contains("folder/n01/broken.JPEG") })
        #expect(warnings.contains { $0.contains("folder/n02/readme.txt") && $0.contains("not an image") })
        #expect(r.stderr.contains("4 images in 2 shards, 2 classes, 2 skipped"))
        let shards = try ws.shards("out")
        #expect(shards.count == 2)
        #expect(shards[0]["images"]?.shape == [3, 16, 16, 3])
        #expect(shards[0]["images"]?.dtype == .u8)
        #expect(shards[1]["labels"]?.shape == [1])
        #expect(ws.labels(shards) == [0, 0, 1, 1])
        #expect(shards[0].metadata["split"] == "train")
        #expect(shards[0].metadata["size"] == "16")
        #expect(shards[0].metadata["classes"] == "[\"n01\",\"n02\"]")
        // The greyscale JPEG (first image of n02) comes out as RGB with equal channels.
        if let px = shards[0]["images"]?.bytes {
            let grey = Array(px[(2 * 16 * 16 * 3)..<(3 * 16 * 16 * 3)])
            let pixels: [[UInt8]] = stride(from: 0, to: grey.count, by: 3).map { (i: Int) -> [UInt8] in Array(grey[i..<(i + 3)]) }
            let isGrey = pixels.allSatisfy { (p: [UInt8]) -> Bool in p[0] == p[1] && p[1] == p[2] }
            #expect(isGrey)
        }
        let index = try ws.index("out")
        #expect(index["images"]?.intValue == 4)
        #expect(index["counts"]?["n01"]?.intValue == 2)
        #expect(index["counts"]?["n02"]?.intValue == 2)
        guard case let .array(skipped)? = index["skipped"], case let .array(list)? = index["shards"] else {
            Issue.record("index.json lacks skipped or shards")
            return
        }
        #expect(skipped.count == 2)
        #expect(skipped.compactMap { $0["file"]?.stringValue }.contains { $0.hasSuffix("broken.JPEG") })
        // Shard digests match the files.
        for entry in list {
            let name = entry["file"]?.stringValue ?? ""
            let bytes = try readWholeFile(ws.path("out/" + name))
            #expect(entry["bytes"]?.intValue == Int64(bytes.count))
            #expect(entry["sha256"]?.stringValue == Self.sha256sum(ws.path("out/" + name)))
        }
        #expect(try ws.leftovers().isEmpty)
    }

    static func sha256sum(_ path: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return nil }
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: d, as: UTF8.self).split(separator: " ").first.map(String.init)
    }

    @Test func strictFailsWith65NamingTheFile() throws {
        let ws = try PackWorkspace()
        defer { ws.remove() }
        let r = try ws.run(["--size", "16", "--strict", "-o", "out", "folder"])
        #expect(r.status == 65)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("pack-imagenet: error: ") == true)
        #expect(r.stderr.contains("broken.JPEG"))
        #expect(!FileManager.default.fileExists(atPath: ws.path("out")))
        #expect(try ws.leftovers().isEmpty)
    }

    @Test func usageErrorsExit64() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        let r = try ws.run(["--size", "0", "-o", "out", "folder"])
        #expect(r.status == 64)
        #expect(r.stderr.hasPrefix("pack-imagenet: error: "))
        let missing = try ws.run(["-o", "out", "nonexistent"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nonexistent"))
    }

    @Test func imageFolderTarAndNestedTrainTarMatchTheDirectory() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        try ws.tar("folder.tar", ["folder"])
        // ILSVRC2012 train layout: one tar per WordNet id, inside one tar.
        try ws.tar("n01.tar", ["a.JPEG", "b.JPEG"], cwd: "folder/n01")
        try ws.tar("n02.tar", ["c.JPEG", "sub/d.JPEG"], cwd: "folder/n02")
        try ws.tar("train.tar", ["n01.tar", "n02.tar"])
        let a = try ws.run(["--size", "16", "-o", "dir", "folder"])
        let b = try ws.run(["--size", "16", "-o", "tar", "folder.tar"])
        let c = try ws.run(["--size", "16", "-o", "nested", "train.tar"])
        for r in [a, b, c] { #expect(r.status == 0, "\(r.stderr)") }
        let images = try ["dir", "tar", "nested"].map { try ws.shards($0).flatMap { $0["images"]?.bytes ?? [] } }
        #expect(images[0].count == 4 * 16 * 16 * 3)
        #expect(images[1] == images[0])
        #expect(images[2] == images[0])
        #expect(ws.labels(try ws.shards("nested")) == [0, 0, 1, 1])
    }

    @Test func validationTarWithLocCsvAndWithGroundTruth() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        try FileManager.default.createDirectory(atPath: ws.path("val"), withIntermediateDirectories: true)
        for i in 1...3 { try ws.write("val/ILSVRC2012_val_0000000\(i).JPEG", i == 2 ? PackFixtures.greyJPEG : PackFixtures.rgbJPEG) }
        try ws.tar("val.tar", ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"], cwd: "val")
        try ws.write("LOC_val_solution.csv", Array("ImageId,PredictionString\nILSVRC2012_val_00000002,n09 1 2 3 4\nILSVRC2012_val_00000001,n05 0 0 9 9 n05 1 1 5 5\nILSVRC2012_val_00000003,n05 1 1 2 2\n".utf8))
        try ws.write("gt.txt", Array("2\n1\n2\n".utf8))
        try ws.write("synsets.txt", Array("n09 jellyfish\nn05 dog\n".utf8))
        let loc = try ws.run(["--size", "8", "--split", "val", "--labels", "LOC_val_solution.csv", "-o", "loc", "val.tar"])
        #expect(loc.status == 0, "\(loc.stderr)")
        let gt = try ws.run(["--size", "8", "--split", "val", "--labels", "synsets.txt", "--labels", "gt.txt", "-o", "gt", "val.tar"])
        #expect(gt.status == 0, "\(gt.stderr)")
        for out in ["loc", "gt"] {
            let shards = try ws.shards(out)
            #expect(ws.labels(shards) == [0, 1, 0])  // classes sorted: n05, n09
            #expect(shards.first?.metadata["classes"] == "[\"n05\",\"n09\"]")
            #expect(shards.first?.metadata["split"] == "val")
            #expect(FileManager.default.fileExists(atPath: ws.path(out + "/val-00000.safetensors.lz4")))
        }
        let missing = try ws.run(["--size", "8", "--split", "val", "--labels", "gt.txt", "-o", "x", "val.tar"])
        #expect(missing.status == 64)
    }

    @Test func streamToStdoutReadsBackWithTensorStreamReader() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        let r = try ws.run(["--size", "12", "--shard-size", "3", "-o", "-", "folder"])
        #expect(r.status == 0, "\(r.stderr)")
        var reader = TensorStreamReader(bytes: r.stdout, sourceName: "stdout")
        var counts: [Int] = []
        while let file = try reader.next() { counts.append(file["labels"]?.count ?? -1) }
        #expect(counts == [3, 1])
        let files = try FileManager.default.contentsOfDirectory(atPath: ws.dir.path)
        #expect(files.sorted() == ["folder"])
    }

    /// No -o is -o -: the same shard stream on stdout, and piped into train-supernet
    /// --data - as the help's example writes it, it trains.
    @Test func withoutOutputTheStreamGoesToStdoutAndTrains() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        let dash = try ws.run(["--size", "12", "--shard-size", "3", "-o", "-", "folder"])
        let none = try ws.run(["--size", "12", "--shard-size", "3", "folder"])
        #expect(dash.status == 0 && none.status == 0, "\(dash.stderr)\(none.stderr)")
        #expect(!none.stdout.isEmpty && none.stdout == dash.stdout)
        #expect(none.stderr.contains("-> <stdout>"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.dir.path) == ["folder"])

        let environment = ["PATH": ToolHarness.binDir + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        let pipeline = "set -o pipefail; pack-imagenet --size 24 --shard-size 2 folder | train-supernet --space '\(ToolHarness.space("tiny"))' --data - --checkpoint c.safetensors.lz4 --steps 2 --batch-size 2 --log-every 1 --shuffle-buffer 4 --num-arch 2"
        let r = try ToolHarness.execute("/bin/bash", ["-c", pipeline], in: ws.dir.path, environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        let steps = String(decoding: r.stdout, as: UTF8.self).split(separator: "\n").compactMap { try? JSONValue.parse(String($0))["step"]?.intValue }
        #expect(steps == [1, 2])
        #expect(FileManager.default.fileExists(atPath: ws.path("c.safetensors.lz4")))
    }

    /// With stdout on a terminal the stream is refused with one usage line and nothing is
    /// written there; -o DIR still works. `script` (util-linux, Essential on Debian) gives
    /// the tool a pty as stdout and stderr and copies what reaches it to its own stdout.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script")))
    func refusesToWriteTheStreamToATerminal() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        func onTerminal(_ args: String) throws -> (status: Int32, output: String) {
            let r = try ToolHarness.execute("/usr/bin/script", ["-qec", "'\(PackRun.binary)' \(args)", "/dev/null"], in: ws.dir.path)
            return (r.status, String(decoding: r.stdout, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n"))
        }
        for args in ["--size 8 folder", "--size 8 -o - folder"] {
            let r = try onTerminal(args)
            #expect(r.status == 64, "\(args): \(r.output)")
            #expect(r.output == "pack-imagenet: error: refusing to write binary shards to a terminal; give -o DIR or pipe it\n", "\(args)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.dir.path) == ["folder"])
        let dir = try onTerminal("--size 8 -o out folder")
        #expect(dir.status == 0, "\(dir.output)")
        #expect(try ws.shards("out").count == 1)
    }

    /// More images than one decode chunk (32 at two jobs), so chunks decode in the
    /// background while the next is read: the output (shards, labels, skipped files in
    /// order) is the same with 1 and 2 jobs, and --limit stops exactly, across chunk ends.
    @Test func manyChunksGiveTheSameOutputWithAnyJobs() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        for c in 0..<3 { try FileManager.default.createDirectory(atPath: ws.path("many/n\(c)"), withIntermediateDirectories: true) }
        for i in 0..<90 {
            let cls = "n\(i % 3)"
            // Every 17th file is broken: skips land in several chunks.
            try ws.write("many/\(cls)/img\(String(format: "%03d", i)).JPEG", i % 17 == 5 ? [0xFF, 0xD8, 0xFF, 0x00] : PackFixtures.rgbJPEG)
        }
        let args = ["--size", "8", "--shard-size", "7", "-o", "out", "many"]
        let one = try ws.run(args + ["--jobs", "1"])
        #expect(one.status == 0, "\(one.stderr)")
        let first = try readWholeFile(ws.path("out/index.json"))
        let firstShards = try ws.shards("out")
        let firstLabels = ws.labels(firstShards)
        let two = try ws.run(args + ["--jobs", "2"])
        #expect(two.status == 0, "\(two.stderr)")
        #expect(try readWholeFile(ws.path("out/index.json")) == first)
        let twoShards = try ws.shards("out")
        #expect(ws.labels(twoShards) == firstLabels && twoShards.map { $0["images"]?.bytes ?? [] } == firstShards.map { $0["images"]?.bytes ?? [] })
        let index = try ws.index("out")
        // Files 39 (class 0), 22 and 73 (class 1), 5 and 56 (class 2) are broken; the rest,
        // in class order, are kept.
        #expect(index["images"]?.intValue == 85 && index["skipped"]?.arrayValue?.count == 5)
        #expect(firstLabels == [Int](repeating: 0, count: 29) + [Int](repeating: 1, count: 28) + [Int](repeating: 2, count: 28))
        let limited = try ws.run(["--size", "8", "--shard-size", "7", "--limit", "40", "--jobs", "2", "-o", "lim", "many"])
        #expect(limited.status == 0, "\(limited.stderr)")
        #expect(try ws.index("lim")["images"]?.intValue == 40)
        try expectShardsAsSerialized(ws, "out")
        try expectShardsAsSerialized(ws, "lim")
    }

    /// Shards are compressed while they fill when their image count is known at their
    /// first image; when a later file turns out broken the count is wrong and the shard
    /// is written whole at the end. Both give the bytes `TensorFile.serialized()` gives.
    @Test func shardsCompressedWhileFillingEqualWholeShards() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        try FileManager.default.createDirectory(atPath: ws.path("few/n0"), withIntermediateDirectories: true)
        for i in 0..<9 {
            // The last file is broken: the second shard expects 4 images and gets 3.
            try ws.write("few/n0/img\(i).JPEG", i == 8 ? [0xFF, 0xD8, 0xFF, 0x00] : PackFixtures.rgbJPEG)
        }
        let r = try ws.run(["--size", "8", "--shard-size", "5", "--jobs", "2", "-o", "out", "few"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try ws.shards("out").map { $0["labels"]?.count ?? -1 } == [5, 3])
        try expectShardsAsSerialized(ws, "out")
    }

    /// Class folders are found as before the name scan learned to count files without a
    /// stat each: a folder holding only an empty dotted subfolder is no class, and images
    /// in a dotted subfolder are packed.
    @Test func dottedSubfoldersDoNotMakeOrHideClasses() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        for d in ["dots/n0/sub.v2", "dots/n1/empty.d"] { try FileManager.default.createDirectory(atPath: ws.path(d), withIntermediateDirectories: true) }
        try ws.write("dots/n0/a.JPEG", PackFixtures.rgbJPEG)
        try ws.write("dots/n0/sub.v2/b.JPEG", PackFixtures.rgbJPEG)
        let r = try ws.run(["--size", "8", "--shard-size", "5", "-o", "out", "dots"])
        #expect(r.status == 0, "\(r.stderr)")
        let index = try ws.index("out")
        #expect(index["classes"]?.arrayValue?.compactMap { $0.stringValue } == ["n0"])
        #expect(index["images"]?.intValue == 2)
        try expectShardsAsSerialized(ws, "out")
    }

    /// Each shard file is one LZ4 frame equal to re-serialising what it holds, and its
    /// index.json digest is the file's.
    func expectShardsAsSerialized(_ ws: PackWorkspace, _ out: String) throws {
        guard case let .array(list)? = try ws.index(out)["shards"] else {
            Issue.record("\(out)/index.json lacks shards")
            return
        }
        #expect(!list.isEmpty)
        for entry in list {
            let name = entry["file"]?.stringValue ?? ""
            let bytes = try readWholeFile(ws.path(out + "/" + name))
            #expect(try TensorFile(bytes: bytes).serialized() == bytes, "\(out)/\(name)")
            #expect(entry["sha256"]?.stringValue == Self.sha256sum(ws.path(out + "/" + name)), "\(out)/\(name)")
        }
    }

    @Test func reRunIsDeterministicAndReplacesTheOutput() throws {
        let ws = try PackWorkspace()
        defer { ws.remove() }
        let args = ["--size", "16", "--shard-size", "2", "-o", "out", "folder"]
        #expect(try ws.run(args + ["--jobs", "1"]).status == 0)
        let first = try readWholeFile(ws.path("out/index.json"))
        #expect(try ws.run(args + ["--jobs", "3"]).status == 0)
        #expect(try readWholeFile(ws.path("out/index.json")) == first)
        // A smaller run replaces the directory as a whole: no stale shard stays.
        #expect(try ws.run(["--size", "16", "--shard-size", "2", "--limit", "1", "-o", "out", "folder"]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: ws.path("out")).sorted()
        #expect(names == ["index.json", "train-00000.safetensors.lz4"])
        #expect(try ws.leftovers().isEmpty)
        // A directory that is not ours is never replaced.
        try FileManager.default.createDirectory(atPath: ws.path("mine"), withIntermediateDirectories: true)
        try ws.write("mine/keep.txt", [1])
        let refused = try ws.run(["--size", "16", "-o", "mine", "folder"])
        #expect(refused.status == 64)
        #expect(FileManager.default.fileExists(atPath: ws.path("mine/keep.txt")))
    }

    @Test func idxPairWithClassNamesGzippedOrNot() throws {
        let ws = try PackWorkspace(bad: false)
        defer { ws.remove() }
        // 3 greyscale 4x4 images (values 0, 100, 200) with labels 2, 0, 1.
        var images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4]
        for v in [0, 100, 200] as [UInt8] { images += [UInt8](repeating: v, count: 16) }
        try ws.write("imgs-idx3-ubyte", images)
        try ws.write("labels-idx1-ubyte", [0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 1])
        try ws.write("names.txt", Array("Zero\nOne\nTwo\n".utf8))
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/usr/bin/gzip")
        gz.arguments = ["-k", ws.path("labels-idx1-ubyte")]
        try gz.run()
        gz.waitUntilExit()
        let r = try ws.run(["--size", "8", "--classes", "names.txt", "-o", "out", "labels-idx1-ubyte.gz", "imgs-idx3-ubyte"])
        #expect(r.status == 0, "\(r.stderr)")
        let shards = try ws.shards("out")
        #expect(ws.labels(shards) == [2, 0, 1])
        #expect(shards.first?.metadata["classes"] == "[\"Zero\",\"One\",\"Two\"]")
        let px = shards.first?["images"]?.bytes ?? []
        #expect(px.count == 3 * 8 * 8 * 3)
        #expect(Array(Set(px[(8 * 8 * 3)..<(2 * 8 * 8 * 3)])) == [100])
        let unpaired = try ws.run(["--size", "8", "-o", "x", "imgs-idx3-ubyte"])
        #expect(unpaired.status == 64)
    }
}
