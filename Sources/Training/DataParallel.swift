import Cluster
import NASCore
import System

/// Synchronised BatchNorm's sums over the ranks of an MPI job (`--sync-bn`).
final class RankSum: BatchNorm.CrossProcessSum {
    let communicator: Communicator
    /// Seconds spent in these all-reduces since the last `takeSeconds()`.
    private(set) var seconds = 0.0

    init(_ communicator: Communicator) { self.communicator = communicator }

    func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        let start = monotonicSeconds()
        communicator.sum(values)
        seconds += monotonicSeconds() - start
    }

    func takeSeconds() -> Double {
        defer { seconds = 0 }
        return seconds
    }
}
