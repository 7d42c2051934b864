import Dispatch
import NASCore
import Supernet

/// How long a subnet's forward pass takes on this machine: evaluation mode (running BN
/// statistics), our engine, on seeded random input of the arch's resolution, `warmup`
/// passes first, then `repeats` timed ones; the median and the 10th and 90th percentiles
/// (nearest rank) of the wall-clock time per pass.
public final class LatencyMeter {
    public struct Result: Sendable, Equatable {
        public var batch: Int
        public var medianMs: Double
        public var p10Ms: Double
        public var p90Ms: Double
        public var runs: Int
    }

    let model: Supernet

    public init(checkpoint: Checkpoint, threads: Int) {
        model = Supernet(weights: checkpoint.weights, space: checkpoint.space, context: ComputeContext(workers: threads))
    }

    public func measure(_ arch: Arch, batch: Int, warmup: Int, repeats: Int) -> Result {
        precondition(batch >= 1 && warmup >= 0 && repeats >= 1, "LatencyMeter: batch, repeats >= 1")
        let r = arch.resolution
        let shape = Shape4(n: batch, h: r, w: r, c: 3)
        var random = SeededRandom(seed: 7)
        let input = (0..<shape.count).map { _ in Float(random.uniform() * 4 - 2) }
        var times: [Double] = []
        input.withUnsafeBufferPointer { x in
            for i in 0..<(warmup + repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = model.forward(arch: arch, input: x, shape: shape, normalization: .runningStatistics, trainable: false, random: &random)
                if i >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            }
        }
        times.sort()
        func rank(_ q: Double) -> Double { times[min(times.count - 1, max(0, Int((q * Double(times.count)).rounded(.up)) - 1))] }
        return Result(batch: batch, medianMs: Self.median(times), p10Ms: rank(0.1), p90Ms: rank(0.9), runs: times.count)
    }

    /// A latency table from timed passes of `archs` at `batch`: per arch and segment the
    /// median over `repeats` passes (after `warmup`), per table key the median over the
    /// archs that have it; the overhead is the median over the archs of the passes' wall
    /// time outside the segments.
    public func table(for archs: [Arch], batch: Int, warmup: Int, repeats: Int, threads: Int) -> LatencyTable {
        precondition(batch >= 1 && warmup >= 0 && repeats >= 1, "LatencyMeter: batch, repeats >= 1")
        var samples: [String: (ms: [Double], mflops: Double)] = [:]
        var overheads: [Double] = []
        var random = SeededRandom(seed: 7)
        for arch in archs {
            let r = arch.resolution
            let shape = Shape4(n: batch, h: r, w: r, c: 3)
            let input = (0..<shape.count).map { _ in Float(random.uniform() * 4 - 2) }
            let segments = LatencyTable.segments(of: arch, in: model.space)
            var perSegment = [[Double]](repeating: [], count: segments.count)
            var outside: [Double] = []
            input.withUnsafeBufferPointer { x in
                for i in 0..<(warmup + repeats) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let ns = model.segmentNanoseconds(arch: arch, input: x, shape: shape)
                    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                    guard i >= warmup else { continue }
                    precondition(ns.count == segments.count, "LatencyMeter: \(ns.count) timed segments for \(segments.count)")
                    for (k, t) in ns.enumerated() { perSegment[k].append(Double(t) / 1e6) }
                    outside.append(max(0, wall - ns.reduce(0) { $0 + Double($1) / 1e6 }))
                }
            }
            for (k, s) in segments.enumerated() {
                samples[s.key, default: ([], s.mflops)].ms.append(Self.median(perSegment[k].sorted()))
            }
            overheads.append(Self.median(outside.sorted()))
        }
        var entries: [String: LatencyTable.Entry] = [:]
        for (k, v) in samples { entries[k] = LatencyTable.Entry(ms: Self.median(v.ms.sorted()), mflops: v.mflops, samples: v.ms.count) }
        return LatencyTable(batch: batch, threads: threads, entries: entries, overheadMs: overheads.isEmpty ? 0 : Self.median(overheads.sorted()))
    }

    static func median(_ sorted: [Double]) -> Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}
