import Foundation
import Testing

/// The fuzz targets built normally (`fuzz-inputs`, the same code `Scripts/fuzz` runs under
/// libFuzzer): the committed seed corpus is what `--write-seeds` makes, every seed is
/// accepted as valid (so the fuzzer starts deep), and seeds and their mutants all return.
@Suite("Fuzz corpus")
struct FuzzCorpusTests {
    static let corpus = ToolHarness.repo + "/Tests/FuzzCorpus"

    @Test(arguments: ["tensor", "arch-lines", "checkpoint", "image"])
    func seedsAndTheirMutantsReturn(target: String) throws {
        let h = try ToolHarness()
        let seeds = try FileManager.default.contentsOfDirectory(atPath: Self.corpus + "/" + target)
        #expect(!seeds.isEmpty, "no seeds for \(target)")
        let r = try h.run("fuzz-inputs", ["--mutate", "200", target, Self.corpus + "/" + target],
                          environment: ["FUZZ_SPACE": Self.corpus + "/micro.json"])
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let n = seeds.count
        #expect(r.stdout == "\(target): \(n) inputs (\(n) accepted), \(200 * n) mutants, all returned\n", "\(r.stdout)")
    }

    @Test func committedCorpusIsWhatWriteSeedsMakes() throws {
        let h = try ToolHarness()
        try FileManager.default.copyItem(atPath: Self.corpus + "/micro.json", toPath: h.path("micro.json"))
        let r = try h.run("fuzz-inputs", ["--write-seeds", h.dir])
        #expect(r.status == 0, "\(r.stderr)")
        for target in ["tensor", "arch-lines", "checkpoint", "image"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus + "/" + target).sorted()
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.path(target)).sorted() == names)
            for name in names {
                let committed = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/\(target)/\(name)"))
                let made = try Data(contentsOf: URL(fileURLWithPath: h.path("\(target)/\(name)")))
                #expect(committed == made, "\(target)/\(name) differs from --write-seeds")
            }
        }
    }

    @Test func unknownTargetIsAUsageError() throws {
        let h = try ToolHarness()
        let r = try h.run("fuzz-inputs", ["bogus", "x"])
        #expect(r.status == 64 && r.stderr.contains("usage: fuzz-inputs"), "\(r.stderr)")
    }
}
