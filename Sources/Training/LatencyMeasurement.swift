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

    static func median(_ sorted: [Double]) -> Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}
