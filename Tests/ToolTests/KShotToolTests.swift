import FileFormats
import Foundation
import Testing

/// `train-supernet --kshot K` through the binaries: a K = 4 run resumes bit for bit, its
/// checkpoint holds the copies and the simplex-net, another K is refused, and
/// estimate-acc, infer and export-subnet take the K-shot checkpoint.
@Suite(.serialized) struct KShotToolTests {
    typealias F = TrainSupernetFixtures

    @Test func kshotRunResumesExactlyAndServesEveryTool() throws {
        let h = try ToolHarness()
        try F.make(in: h, trainImages: 64, valImages: 16)
        let archs = try h.run("sample-subnets", ["--space", h.path("micro.json"), "--min", "--max"]).lines
        func archs0() -> String { archs[0] }
        let k4 = ["--kshot", "4", "--kshot-warmup", "2", "--log-every", "1"]
        let once = try h.run("train-supernet", F.common(h, checkpoint: "once.safetensors.lz4") + k4 + ["--steps", "4", "--total-steps", "4"])
        #expect(once.status == 0, "\(once.stderr)")
        let first = try h.run("train-supernet", F.common(h, checkpoint: "split.safetensors.lz4") + k4 + ["--steps", "3", "--total-steps", "4"])
        let second = try h.run("train-supernet", F.common(h, checkpoint: "split.safetensors.lz4") + ["--steps", "4", "--log-every", "1"])
        #expect(first.status == 0 && second.status == 0, "\(first.stderr)\(second.stderr)")
        func stripped(_ lines: [String]) -> [String] { lines.map { $0.components(separatedBy: ",\"images_per_s\"")[0] } }
        #expect(stripped(once.lines) == stripped(first.lines + second.lines))
        let a = try Data(contentsOf: URL(fileURLWithPath: h.path("once.safetensors.lz4")))
        let b = try Data(contentsOf: URL(fileURLWithPath: h.path("split.safetensors.lz4")))
        #expect(a == b, "K = 4: checkpoints of 4 steps and 3 + 1 steps differ")

        let file = try TensorFile(contentsOf: h.path("once.safetensors.lz4"))
        #expect(file.metadata["kshot"] == "4")
        for k in 0..<4 { #expect(file["kshot.copies.\(k).classifier.linear.linear.weight"] != nil) }
        // The simplex-net trained after its warm-up: its code layer left zero.
        let code = try #require(file["kshot.simplex_net.code.weight"]).floats()
        #expect(code.contains { $0 != 0 }, "the simplex-net did not train")
        // A plain run of the same recipe differs (the copies are mixed).
        let plain = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors.lz4") + ["--steps", "4", "--total-steps", "4", "--log-every", "1"])
        #expect(plain.status == 0 && stripped(plain.lines) != stripped(once.lines), "\(plain.stderr)")

        // Another K cannot resume it (either way), naming --kshot.
        let wrong = try h.run("train-supernet", F.common(h, checkpoint: "once.safetensors.lz4") + ["--kshot", "2", "--steps", "6"])
        #expect(wrong.status == 64 && wrong.stderr.contains("--kshot 2 cannot resume it") && wrong.stderr.contains("K = 4"), "\(wrong.stderr)")
        let wrong1 = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors.lz4") + ["--kshot", "4", "--steps", "6"])
        #expect(wrong1.status == 64 && wrong1.stderr.contains("plain supernet (K = 1)"), "\(wrong1.stderr)")
        let standalone = try h.run("train-supernet", F.common(h, checkpoint: "sa.safetensors.lz4") + ["--kshot", "4", "--steps", "1", "--arch", archs0()])
        #expect(standalone.status == 64 && standalone.stderr.contains("drop --kshot"), "\(standalone.stderr)")

        // A plain state_dict cannot start a K-shot run; one subnet of a K-shot supernet
        // fine-tunes from its own mix (--init --arch).
        let fromPlain = try h.run("train-supernet", F.common(h, checkpoint: "plain.safetensors.lz4").map { $0 == "plain.safetensors.lz4" ? "new.safetensors.lz4" : $0 }
                                  + ["--init", "plain.safetensors.lz4", "--kshot", "4", "--steps", "1"])
        #expect(fromPlain.status == 64 && fromPlain.stderr.contains("--kshot 4 cannot start from it"), "\(fromPlain.stderr)")
        let tune = try h.run("train-supernet", F.common(h, checkpoint: "tuned.safetensors.lz4") + ["--init", "once.safetensors.lz4", "--arch", archs[0], "--steps", "1"])
        #expect(tune.status == 0, "\(tune.stderr)")
        #expect(try TensorFile(contentsOf: h.path("tuned.safetensors.lz4")).metadata["kshot"] == nil)

        // Every reader materialises a subnet's weights from its codes.
        let est = try h.run("estimate-acc", ["--checkpoint", "once.safetensors.lz4", "--calib", h.path("train"), "--val", h.path("val"),
                                             "--calib-batches", "1", "--batch-size", "8"], stdin: archs.joined(separator: "\n") + "\n")
        #expect(est.status == 0 && est.lines.count == 2, "\(est.stderr)")
        let inf = try h.run("infer", ["--checkpoint", "once.safetensors.lz4", "--arch", archs[0], "--images", h.path("val/val-00000.safetensors.lz4")])
        #expect(inf.status == 0 && !inf.lines.isEmpty, "\(inf.stderr)")
        let exp = try h.run("export-subnet", ["--checkpoint", "once.safetensors.lz4", "--arch", archs[1], "--calib", h.path("train"),
                                              "--calib-batches", "1", "--batch-size", "8", "-o", "max.safetensors.lz4"])
        #expect(exp.status == 0, "\(exp.stderr)")
        let exported = try TensorFile(contentsOf: h.path("max.safetensors.lz4"))
        #expect(exported.tensors.map(\.name).allSatisfy { !$0.hasPrefix("kshot.") })
        // The exported model gives what estimate-acc gives for that subnet.
        let estExported = try h.run("estimate-acc", ["--checkpoint", "max.safetensors.lz4", "--calib", h.path("train"), "--val", h.path("val"),
                                                      "--calib-batches", "1", "--batch-size", "8"], stdin: archs[1] + "\n")
        #expect(estExported.status == 0, "\(estExported.stderr)")
        func acc(_ line: String) throws -> Double? { try JSONValue.parse(line)["acc1"]?.doubleValue }
        #expect(try acc(estExported.lines.first ?? "{}") == (try acc(est.lines[1])), "\(estExported.stdout) vs \(est.stdout)")
    }
}
