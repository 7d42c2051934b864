#if canImport(Glibc)
import Glibc
#endif
import CMPI
import System

/// The processes of one MPI job (`mpirun -np N`, `srun`): this process's rank, their
/// count, and the collective operations data-parallel training needs. `world` is nil
/// in a plain run (not started by an MPI launcher), which then never touches MPI.
///
/// Only the main thread calls MPI. A rank that fails exits nonzero, and the launcher
/// ends the whole job (OpenMPI's default error handler aborts on any MPI error too),
/// so no rank waits for a dead one.
public final class Communicator: Sendable {
    public let rank: Int
    public let size: Int

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// Set by the MPI launchers we know: OpenMPI's mpirun, PMIx (srun --mpi=pmix) and
    /// PMI-1/2 (srun --mpi=pmi2, MPICH's hydra).
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"]

    /// Whether this process was started by an MPI launcher.
    public static var isLaunched: Bool { launcherVariables.contains { getenv($0) != nil } }

    /// The job this process belongs to (MPI initialised on first use, finalised at
    /// exit), or nil in a plain run.
    public static let world: Communicator? = {
        guard isLaunched else { return nil }
        guard an_mpi_init() == MPI_SUCCESS else { return nil }
        atexit { if an_mpi_initialized() != 0 { _ = an_mpi_finalize() } }
        return Communicator(rank: Int(an_mpi_rank()), size: Int(an_mpi_size()))
    }()

    public var isRoot: Bool { rank == 0 }

    /// Sums `values` over every rank, in place (each rank ends with the same sums).
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        inChunks(values, of: 1 << 30) { check(an_mpi_allreduce_sum_f32($0, $1), "MPI_Allreduce") }
    }

    public func sum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { sum($0) }
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        inChunks(values, of: 1 << 30) { check(an_mpi_allreduce_sum_f64($0, $1), "MPI_Allreduce") }
    }

    /// Rank 0's `values` on every rank, in place.
    public func broadcast(_ values: UnsafeMutableBufferPointer<Float>) {
        inChunks(values, of: 1 << 28) { check(an_mpi_bcast_bytes($0, 4 * $1, 0), "MPI_Bcast") }
    }

    /// `body(start, count)` over consecutive pieces of at most `limit` elements (MPI
    /// counts are Int32); nothing alone, where every rank already holds the result.
    private func inChunks<T>(_ values: UnsafeMutableBufferPointer<T>, of limit: Int, _ body: (UnsafeMutablePointer<T>, Int32) -> Void) {
        guard size > 1, let base = values.baseAddress else { return }
        var offset = 0
        while offset < values.count {
            let n = Swift.min(values.count - offset, limit)
            body(base + offset, Int32(n))
            offset += n
        }
    }

    public func max(_ values: inout [Int64]) {
        guard size > 1, !values.isEmpty else { return }
        let count = Int32(values.count)
        let rc = values.withUnsafeMutableBufferPointer { an_mpi_allreduce_max_i64($0.baseAddress, count) }
        check(rc, "MPI_Allreduce")
    }

    public func min(_ values: inout [Int64]) {
        guard size > 1, !values.isEmpty else { return }
        let count = Int32(values.count)
        let rc = values.withUnsafeMutableBufferPointer { an_mpi_allreduce_min_i64($0.baseAddress, count) }
        check(rc, "MPI_Allreduce")
    }

    /// Rank 0's `bytes` on every rank (others pass anything; they receive).
    public func broadcast(_ bytes: [UInt8]) -> [UInt8] {
        guard size > 1 else { return bytes }
        var count = [Int64(isRoot ? bytes.count : 0)]
        check(count.withUnsafeMutableBufferPointer { an_mpi_bcast_i64($0.baseAddress, 1, 0) }, "MPI_Bcast")
        var out = isRoot ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        guard count[0] > 0 else { return out }
        guard count[0] <= Int64(Int32.max) else {
            let message = "rank \(rank): a broadcast of \(count[0]) bytes is over MPI's limit; ending the job\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            abort(1)
        }
        check(out.withUnsafeMutableBytes { an_mpi_bcast_bytes($0.baseAddress, Int32(count[0]), 0) }, "MPI_Bcast")
        return out
    }

    /// Returns once every rank has called it.
    public func barrier() {
        guard size > 1 else { return }
        check(an_mpi_barrier(), "MPI_Barrier")
    }

    /// Ends the whole job at once (a rank that cannot go on).
    public func abort(_ code: Int32) -> Never {
        an_mpi_abort(code)
        exit(code)
    }

    private func check(_ rc: Int32, _ what: String) {
        guard rc != MPI_SUCCESS else { return }
        let message = "rank \(rank): \(what) failed (\(rc)); ending the job\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        abort(1)
    }
}
