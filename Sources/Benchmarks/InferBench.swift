import System
import DataPipeline
import Dispatch
import Foundation
import NASCore
import Supernet
import Training

/// `Benchmarks infer [--data DIR] [--quick] [--only LABEL,...] [--profile]`: images/s of
/// eval-mode inference (running statistics, no tape; BatchNorm fused into the convolutions,
/// and, alternating with it, one pass per BN: `images_per_s_separate_bn`) for official-space subnets at batch 64 and
/// 128x128 input (A0 and A6 with resolution 128, the max subnet at 128) and
/// tiny-space subnets at 32 px, batch 256 (max, min); then subnets/minute of
/// accuracy estimation on the demo data in DIR (default /tmp/demo-data; made by
/// Scripts/demo-data) with jobs = cores and jobs = 1. Weights are the
/// initialiser's (speed does not depend on the values). One JSON line each.
/// Each subnet also runs as a BN recalibration batch (`images_per_s_calibration`).
/// `--only A0@128,min@32` runs just those subnets (labels as printed; `estimate-acc`
/// for the demo figure; `A0@224`, `A6@224` at batch 256, estimate-acc's ImageNet
/// setting, run only when named); `--profile` adds each subnet's time per op kind, in
/// evaluation and in calibration.
func runInferBench(arguments: [String]) {
    var dataDir = "/tmp/demo-data"
    if let i = arguments.firstIndex(of: "--data"), i + 1 < arguments.count { dataDir = arguments[i + 1] }
    let quick = arguments.contains("--quick")
    let profile = arguments.contains("--profile")
    var only: Set<String>?
    if let i = arguments.firstIndex(of: "--only"), i + 1 < arguments.count {
        only = Set(arguments[i + 1].split(separator: ",").map(String.init))
    }
    let cores = Cores.available
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func emit(_ fields: [(String, Any)]) { KernelBench.emit(fields) }

    // sgemm peak with our threading policy (as KernelBench measures it).
    do {
        let ctx = ComputeContext(workers: cores)
        let n = 2048
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let t = KernelBench.time(budget: 1) {
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                guard let pa = ap.baseAddress, let pb = bp.baseAddress, let pc = cp.baseAddress else { return }
                Gemm.sgemm(ctx, transA: false, transB: false, m: n, n: n, k: n, a: pa, lda: n, b: pb, ldb: n, beta: 0, c: pc, ldc: n)
            } } }
        }
        emit([("bench", "sgemm_peak"), ("shape", "2048^3"), ("gflops", 2 * pow(Double(n), 3) / t * 1e-9), ("threads", cores),
              ("blas_kernels", BLASKernels.coreName), ("openblas_coretype", BLASKernels.coreTypeSetting)])
    }

    func throughput(space spaceName: String, arch: Arch, label: String, batch: Int) {
        if let only, !only.contains(label) { return }
        guard let space = try? SearchSpace(contentsOf: repo + "/pipelines/spaces/\(spaceName).json") else {
            FileHandle.standardError.write(Data("infer bench: cannot read space \(spaceName)\n".utf8))
            return
        }
        let weights = SupernetInitializer.initialWeights(space: space, seed: 0)
        let model = Supernet(weights: weights, space: space, context: ComputeContext(workers: cores))
        // The same subnet with the AVX2 kernels, when ours run AVX-512 (timed alternating).
        let avx2Model = model.context.vectorISA == .avx2 ? nil
            : Supernet(weights: weights, space: space, context: ComputeContext(workers: cores, vectorISA: .avx2))
        let r = arch.resolution
        var rng = SeededRandom(seed: 1)
        let input = (0..<(batch * r * r * 3)).map { _ in Float(rng.next() % 1000) / 500 - 1 }
        func run(_ normalization: NormalizationMode = .runningStatistics, on model: Supernet = model) {
            var random = SeededRandom(seed: 0)
            _ = input.withUnsafeBufferPointer {
                model.forward(arch: arch, input: $0, shape: Shape4(n: batch, h: r, w: r, c: 3), normalization: normalization,
                              trainable: false, random: &random)
            }
        }
        // BN fused into the convolutions (the default), then one pass per BN, then BN
        // recalibration (batch statistics accumulated into the running ones, as
        // estimate-acc's calibration batches), alternating.
        var fused: [Double] = [], separate: [Double] = [], calibrating: [Double] = [], fusedAVX2: [Double] = []
        for _ in 0..<(quick ? 1 : 2) {
            model.fusesNormalization = true
            fused.append(KernelBench.time(budget: quick ? 0.5 : 2, { run() }))
            if let avx2Model { fusedAVX2.append(KernelBench.time(budget: quick ? 0.5 : 2, { run(on: avx2Model) })) }
            model.fusesNormalization = false
            separate.append(KernelBench.time(budget: quick ? 0.5 : 2, { run() }))
            model.fusesNormalization = true
            calibrating.append(KernelBench.time(budget: quick ? 0.5 : 2, { run(.calibration(batchIndex: 1)) }))
        }
        let t = fused.min() ?? 0, ts = separate.min() ?? 0, tc = calibrating.min() ?? 0
        emit([("bench", "infer"), ("space", spaceName), ("subnet", label), ("resolution", r), ("batch", batch),
              ("images_per_s", Double(batch) / t), ("images_per_s_separate_bn", Double(batch) / ts),
              ("images_per_s_calibration", Double(batch) / tc),
              ("vector_isa", model.context.vectorISA.rawValue),
              ("images_per_s_avx2", fusedAVX2.min().map { Double(batch) / $0 } ?? Double(batch) / t),
              ("flops_m", arch.flops(in: space)), ("threads", cores)])
        if profile {
            for (mode, normalization) in [("eval", NormalizationMode.runningStatistics), ("calibration", .calibration(batchIndex: 1))] {
                let ops = OpProfile()
                model.profile = ops
                for _ in 0..<5 { run(normalization) }
                model.profile = nil
                let total = Double(ops.forward.values.reduce(0, +))
                for (k, v) in ops.forward.sorted(by: { $0.value > $1.value }) {
                    emit([("subnet", label), ("mode", mode), ("op", k), ("ms_per_batch", Double(v) * 1e-6 / 5), ("pct_of_ops", 100 * Double(v) / total)])
                }
                emit([("subnet", label), ("mode", mode), ("op", "all ops"), ("ms_per_batch", total * 1e-6 / 5),
                      ("ms_per_batch_timed", (mode == "eval" ? t : tc) * 1000)])
            }
        }
    }

    let a0 = Arch(resolution: 128, width: [16, 16, 24, 32, 64, 112, 192, 216, 1792], depth: [1, 3, 3, 3, 3, 3, 1],
                  kernelSize: [3, 3, 3, 3, 3, 3, 3], expandRatio: [1, 4, 4, 4, 4, 6, 6])
    let a6 = Arch(resolution: 128, width: [16, 16, 24, 32, 64, 112, 216, 224, 1984], depth: [1, 3, 3, 4, 4, 6, 1],
                  kernelSize: [3, 3, 3, 3, 3, 5, 3], expandRatio: [1, 4, 6, 5, 4, 6, 6])
    throughput(space: "alphanet", arch: a0, label: "A0@128", batch: 64)
    throughput(space: "alphanet", arch: a6, label: "A6@128", batch: 64)
    // estimate-acc's ImageNet setting (224 px, batch 256; tensors far beyond the cache):
    // only when named in --only.
    if only != nil {
        for (arch, name) in [(a0, "A0@224"), (a6, "A6@224")] {
            var a = arch
            a.resolution = 224
            throughput(space: "alphanet", arch: a, label: name, batch: 256)
        }
    }
    if let official = try? SearchSpace(contentsOf: repo + "/pipelines/spaces/alphanet.json") {
        var mx = official.maxArch
        mx.resolution = 128
        throughput(space: "alphanet", arch: mx, label: "max@128", batch: 64)
    }
    if let tiny = try? SearchSpace(contentsOf: repo + "/pipelines/spaces/tiny.json") {
        throughput(space: "tiny", arch: tiny.maxArch, label: "max", batch: 256)
        var mn = tiny.minArch
        mn.resolution = 32
        throughput(space: "tiny", arch: mn, label: "min@32", batch: 256)

        // estimate-acc throughput on the demo data.
        if let only, !only.contains("estimate-acc") { return }
        guard FileManager.default.fileExists(atPath: dataDir + "/train") else {
            FileHandle.standardError.write(Data("infer bench: no demo data in \(dataDir) (Scripts/demo-data \(dataDir)); skipping estimate-acc\n".utf8))
            return
        }
        let calibBatches = quick ? 2 : 16, valLimit = quick ? 512 : 2000
        let data: EstimationData
        do {
            data = try EstimationData(calibration: dataDir + "/train", validation: dataDir + "/val", batchSize: 256, calibBatches: calibBatches, valLimit: valLimit)
        } catch {
            FileHandle.standardError.write(Data("infer bench: \(error)\n".utf8))
            return
        }
        let checkpoint = Checkpoint(space: tiny, weights: SupernetInitializer.initialWeights(space: tiny, seed: 0))
        var rng = SeededRandom(seed: 3)
        let archs = (0..<(quick ? 2 : 8)).map { _ in
            Arch(resolution: tiny.resolutions[Int(rng.next() % UInt64(tiny.resolutions.count))],
                 width: tiny.widthChoices.map { $0[Int(rng.next() % UInt64($0.count))] },
                 depth: tiny.depthChoices.map { $0[Int(rng.next() % UInt64($0.count))] },
                 kernelSize: tiny.kernelChoices.map { $0[Int(rng.next() % UInt64($0.count))] },
                 expandRatio: tiny.expandChoices.map { $0[Int(rng.next() % UInt64($0.count))] })
        }
        for jobs in Set([cores, 1]).sorted(by: >) {
            let estimator = AccuracyEstimator(checkpoint: checkpoint, data: data, jobs: jobs, workersPerJob: max(1, cores / jobs))
            _ = estimator.evaluate(archs[0])  // render the batches once (shared by every subnet)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let pool = OrderedWorkQueue<Arch, SubnetAccuracy>(jobs: jobs, work: { a, j in estimator.evaluate(a, job: j) }, deliver: { _, _ in })
            for a in archs { pool.submit(a) }
            pool.finish()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            emit([("bench", "estimate_acc"), ("space", "tiny"), ("jobs", jobs), ("calib_images", data.calibrationImages),
                  ("val_images", data.validationImages), ("subnets", archs.count), ("subnets_per_min", Double(archs.count) / dt * 60)])
        }
    }
}
