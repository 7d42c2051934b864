import System
import Foundation
import NASCore
import Supernet
import Training

/// Seconds per sandwich training step (`SandwichTrainer.step`, official AlphaNet
/// options) with four fixed subnets, against the sgemm 2048³ peak of the same run.
///
/// GFLOP/s = 2 x 3 x batch x (sum of the subnets' forward MACs per image) / seconds:
/// forward, backward-data and backward-weight each cost about the forward MACs.
/// MACs per image = `Arch.flops(in:)` x 1e6 at the subnet's resolution.
///
/// Options: `--case A|B|C` (repeatable; default all), `--steps N` timed steps
/// (default 10, median reported) after `--warmup W` (default 3), `--profile`
/// (per-op-type wall time of the timed steps), `--soak SECONDS` or `--soak-steps N`
/// (after the timed steps, keep stepping and print RSS and max RSS every 100 steps),
/// `--kshot K` (a K-shot supernet with K copies, simplex-net trained: the mixing and the
/// gradient distribution run every step; default 1, the plain supernet).
func runTrainStepBench(arguments: [String]) {
    var cases: [String] = []
    var steps = 10, warmup = 3, profile = false, soak = 0.0, soakSteps = 0, kshot = 1
    var it = arguments.makeIterator()
    while let a = it.next() {
        switch a {
        case "--case": if let v = it.next() { cases.append(v) }
        case "--steps": steps = Int(it.next() ?? "") ?? steps
        case "--warmup": warmup = Int(it.next() ?? "") ?? warmup
        case "--profile": profile = true
        case "--soak": soak = Double(it.next() ?? "") ?? 0
        case "--soak-steps": soakSteps = Int(it.next() ?? "") ?? 0
        case "--kshot": kshot = max(1, Int(it.next() ?? "") ?? 1)
        default:
            FileHandle.standardError.write(Data("Benchmarks train-step: unknown option \(a)\n".utf8))
            exit(64)
        }
    }
    if cases.isEmpty { cases = ["A", "B", "C"] }
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let workers = Cores.available
    let context = ComputeContext(workers: workers, blasThreads: 1)
    let peak = TrainStepBench.sgemmPeak(context)
    KernelBench.emit([("kernel", "sgemm_peak"), ("shape", "2048x2048x2048"), ("gflops", peak),
                      ("blas_kernels", BLASKernels.coreName), ("openblas_coretype", BLASKernels.coreTypeSetting)])
    for name in cases {
        do {
            try TrainStepBench.run(case: name, repo: repo, context: context, steps: steps, warmup: warmup,
                                   peak: peak, profile: profile, soak: soak, soakSteps: soakSteps, kshot: kshot)
        } catch {
            FileHandle.standardError.write(Data("Benchmarks train-step: \(error)\n".utf8))
            exit(1)
        }
    }
}

enum TrainStepBench {
    static func sgemmPeak(_ ctx: ComputeContext) -> Double {
        let n = 2048
        let a = KernelBench.Buffer(n * n, seed: 1), b = KernelBench.Buffer(n * n, seed: 2), c = KernelBench.Buffer(n * n, seed: 3)
        let t = KernelBench.time(budget: 1) {
            Gemm.sgemm(ctx, transA: false, transB: false, m: n, n: n, k: n, a: a.base, lda: n,
                       b: b.base, ldb: n, beta: 0, c: c.base, ldc: n)
        }
        return 2 * pow(Double(n), 3) / t * 1e-9
    }

    /// Max resident set size so far (VmHWM) in MiB, or -1.
    static func maxRSS() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? -1
            return kb / 1024
        }
        return -1
    }

    /// Current resident set size (VmRSS) in MiB, or -1.
    static func rss() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? -1) / 1024
        }
        return -1
    }

    /// The element at index count/2 of every choice list.
    static func mid(_ space: SearchSpace, resolution: Int) -> Arch {
        func pick(_ c: [Int]) -> Int { c.sorted()[c.count / 2] }
        return Arch(resolution: resolution, width: space.widthChoices.map(pick), depth: space.depthChoices.map(pick),
                    kernelSize: space.kernelChoices.map(pick), expandRatio: space.expandChoices.map(pick))
    }

    /// The second-largest element of every choice list (the only one if it has one).
    static func second(_ space: SearchSpace, resolution: Int) -> Arch {
        func pick(_ c: [Int]) -> Int { let s = c.sorted(); return s[max(0, s.count - 2)] }
        return Arch(resolution: resolution, width: space.widthChoices.map(pick), depth: space.depthChoices.map(pick),
                    kernelSize: space.kernelChoices.map(pick), expandRatio: space.expandChoices.map(pick))
    }

    static func run(case name: String, repo: String, context: ComputeContext, steps: Int, warmup: Int,
                    peak: Double, profile: Bool, soak: Double, soakSteps: Int = 0, kshot: Int = 1) throws {
        let tiny = name == "C"
        let space = try SearchSpace(contentsOf: repo + "/pipelines/spaces/" + (tiny ? "tiny.json" : "alphanet.json"))
        let res = name == "B" ? 128 : (tiny ? 32 : 64)
        let batch = tiny ? 64 : 32
        var archs: [(String, Arch)]
        if tiny {
            archs = [("max", space.maxArch), ("mid", mid(space, resolution: res)), ("second", second(space, resolution: res)), ("min", space.minArch)]
        } else {
            // AlphaNet A4 and A2 (official eval_alphanet_models.yml).
            let a4 = Arch(resolution: 256, width: [16, 16, 24, 32, 64, 112, 192, 216, 1984], depth: [1, 3, 3, 4, 3, 5, 1], kernelSize: [3, 3, 3, 5, 3, 5, 3], expandRatio: [1, 4, 4, 5, 4, 6, 6])
            let a2 = Arch(resolution: 224, width: [16, 16, 24, 32, 64, 112, 200, 224, 1984], depth: [1, 3, 3, 3, 3, 4, 1], kernelSize: [3, 3, 3, 3, 3, 5, 3], expandRatio: [1, 4, 5, 4, 4, 6, 6])
            archs = [("max", space.maxArch), ("A4", a4), ("A2", a2), ("min", space.minArch)]
        }
        for i in archs.indices { archs[i].1.resolution = res }
        let macs = archs.map { $0.1.flops(in: space) }
        let gflop = 2 * 3 * Double(batch) * macs.reduce(0, +) * 1e6 * 1e-9

        let kshotConfig = kshot > 1 ? KShotConfig(copies: kshot) : nil
        let model = Supernet(weights: SupernetInitializer.initialWeights(space: space, seed: 0, kshot: kshotConfig),
                             space: space, context: context)
        // As after the K-shot warm-up: codes differ per subnet, and the simplex-net trains.
        model.trainsSimplexNet = kshotConfig != nil
        let trainer = SandwichTrainer(model: model)
        let shape = Shape4(n: batch, h: res, w: res, c: 3)
        var g = SeededRandom(seed: 7)
        let images = (0..<shape.count).map { _ in g.uniformFloat() * 2 - 1 }
        let labels = (0..<batch).map { _ in Int32(g.next() % UInt64(space.nClasses)) }
        var random = SeededRandom(seed: 1)
        func step() -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = images.withUnsafeBufferPointer {
                trainer.step(archs: archs.map(\.1), images: $0, shape: shape, labels: labels, learningRate: 0.01, random: &random)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        }
        for _ in 0..<warmup { _ = step() }
        let rssWarm = maxRSS()
        let ops = OpProfile()
        if profile { model.profile = ops }
        var times = (0..<steps).map { _ in step() }
        model.profile = nil
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let gflops = gflop / median
        KernelBench.emit([
            ("case", name), ("space", tiny ? "tiny" : "alphanet"), ("kshot", kshot), ("batch", batch), ("resolution", res),
            ("subnets", archs.map(\.0).joined(separator: "+")),
            ("mmacs_per_image", macs.map { String(format: "%.1f", $0) }.joined(separator: "+")),
            ("s_per_step", median), ("s_min", times.first ?? 0), ("s_max", times.last ?? 0),
            ("gflops", gflops), ("sgemm_peak_gflops", peak), ("pct_peak", 100 * gflops / peak),
            ("max_rss_mib_after_warmup", rssWarm), ("max_rss_mib", maxRSS()),
        ])
        if profile {
            let total = Double(ops.forward.values.reduce(0, +) + ops.backward.values.reduce(0, +))
            let kinds = Set(ops.forward.keys).union(ops.backward.keys).sorted {
                (ops.forward[$0, default: 0] + ops.backward[$0, default: 0]) > (ops.forward[$1, default: 0] + ops.backward[$1, default: 0])
            }
            for k in kinds {
                let f = Double(ops.forward[k, default: 0]) * 1e-9 / Double(steps), b = Double(ops.backward[k, default: 0]) * 1e-9 / Double(steps)
                KernelBench.emit([("case", name), ("op", k), ("forward_s", f * 1000), ("backward_s", b * 1000),
                                  ("unit", "ms per step"), ("pct_of_ops", 100 * (f + b) / (total * 1e-9 / Double(steps)))])
            }
            KernelBench.emit([("case", name), ("op", "all ops"), ("ms_per_step", total * 1e-6 / Double(steps)),
                              ("step_ms", median * 1000)])
        }
        if soak > 0 || soakSteps > 0 {
            let start = Date()
            var n = 0
            while soakSteps > 0 ? n < soakSteps : Date().timeIntervalSince(start) < soak {
                _ = step()
                n += 1
                if n % 100 == 0 {
                    KernelBench.emit([("case", name), ("soak_steps", n), ("rss_mib", rss()), ("max_rss_mib", maxRSS()),
                                      ("elapsed_s", Date().timeIntervalSince(start))])
                }
            }
            KernelBench.emit([("case", name), ("soak_steps", n), ("rss_mib", rss()), ("max_rss_mib", maxRSS()),
                              ("elapsed_s", Date().timeIntervalSince(start))])
        }
    }
}
