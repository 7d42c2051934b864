import FileFormats
import Foundation
import System

/// `Benchmarks resume [--data DIR] [--bin DIR] [--at N] [--runs R]`: what resuming costs,
/// through the train-supernet binary (release build, Scripts/build; default
/// .build/x86_64-unknown-linux-gnu/release) on the demo data in DIR (default
/// /tmp/demo-data, made by Scripts/demo-data): the wall time of one process that resumes
/// a tiny-space checkpoint and trains one step, at step 1 and at step N (default 10,000:
/// the checkpoint of step 1 with its step set to N), in the exact-epoch order and in the
/// shuffle-buffer order (which replays every batch before N). Median of R runs (default
/// 3). One JSON line per case.
func runResumeBench(arguments: [String]) {
    func value(_ name: String) -> String? {
        arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
    }
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let data = value("--data") ?? "/tmp/demo-data"
    let bin = value("--bin") ?? repo + "/.build/x86_64-unknown-linux-gnu/release"
    let far = value("--at").flatMap(Int.init) ?? 10_000
    let runs = value("--runs").flatMap(Int.init) ?? 3
    let work = NSTemporaryDirectory() + "resume-bench-\(getpid())"
    try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }

    func train(_ checkpoint: String, _ order: String, steps: Int) -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin + "/train-supernet")
        p.arguments = ["--space", repo + "/pipelines/spaces/tiny.json", "--data", data + "/train", "--checkpoint", checkpoint,
                       "--steps", String(steps), "--total-steps", String(far + 100), "--batch-size", "32", "--augment", "pad-crop",
                       "--data-order", order, "--log-every", "1000000"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let start = monotonicSeconds()
        do { try p.run() } catch { fatalError("resume bench: cannot run \(bin)/train-supernet: \(error)") }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { fatalError("resume bench: train-supernet exited \(p.terminationStatus) (\(checkpoint))") }
        return monotonicSeconds() - start
    }

    for order in ["epochs", "buffer"] {
        // A real checkpoint at step 1, and the same one said to be at step `far`.
        let near = work + "/\(order)-1.safetensors.lz4"
        _ = train(near, order, steps: 1)
        var file: TensorFile
        do { file = try TensorFile(contentsOf: near) } catch { fatalError("resume bench: \(error)") }
        file.metadata["step"] = String(far)
        let farPath = work + "/\(order)-\(far).safetensors.lz4"
        do { try file.write(to: farPath) } catch { fatalError("resume bench: \(error)") }
        for (at, source) in [(1, near), (far, farPath)] {
            var times: [Double] = []
            for r in 0..<runs {
                let copy = work + "/run-\(order)-\(at)-\(r).safetensors.lz4"
                try? FileManager.default.removeItem(atPath: copy)
                try? FileManager.default.copyItem(atPath: source, toPath: copy)
                times.append(train(copy, order, steps: at + 1))
            }
            times.sort()
            KernelBench.emit([("bench", "resume"), ("data_order", order), ("resume_at_step", at),
                              ("seconds_median", times[times.count / 2].roundedTo(3)), ("seconds_all", times.map { $0.roundedTo(3) })])
        }
    }
}
