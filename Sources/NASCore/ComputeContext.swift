import COpenBLAS
import Dispatch
import Foundation
import Synchronization
import System

/// Scratch memory reused by the kernels: one grow-only, 64-byte aligned buffer.
///
/// A kernel asks for the memory it needs with `floats(_:)` or `split(doubles:floats:)`,
/// carves the region up itself, and may clobber all of it; nothing survives from one
/// kernel call to the next. The buffer only ever grows, so after the first step at the
/// largest subnet shape (or an explicit `reserve`) no kernel allocates. Not
/// thread-safe: one workspace per training loop.
public final class Workspace {
    private var base: UnsafeMutableRawPointer
    /// Current capacity in bytes.
    public private(set) var capacityBytes: Int

    public init(bytes: Int = 0) {
        capacityBytes = max(bytes, 64)
        base = .allocate(byteCount: capacityBytes, alignment: 64)
    }

    deinit { base.deallocate() }

    /// Grows the buffer to at least `bytes` bytes (contents are not preserved).
    public func reserve(bytes: Int) {
        guard bytes > capacityBytes else { return }
        base.deallocate()
        // Round up by 1/8 so a slowly growing sequence of shapes does not reallocate every call.
        capacityBytes = bytes + bytes / 8
        base = .allocate(byteCount: capacityBytes, alignment: 64)
    }

    /// `count` uninitialised floats, valid until the next request.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        reserve(bytes: count * MemoryLayout<Float>.stride)
        return base.bindMemory(to: Float.self, capacity: count)
    }

    /// `doubles` uninitialised doubles followed by `floats` uninitialised floats, two
    /// disjoint regions valid until the next request.
    public func split(doubles: Int, floats: Int) -> (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Float>) {
        let dBytes = (doubles * 8 + 63) / 64 * 64
        reserve(bytes: dBytes + floats * 4)
        let d = base.bindMemory(to: Double.self, capacity: doubles)
        let f = (base + dBytes).bindMemory(to: Float.self, capacity: floats)
        return (d, f)
    }
}

/// OpenBLAS's own thread pool, which our tools never use (see `ComputeContext`).
///
/// The pthreads OpenBLAS starts its pool when the library loads, and each pool
/// thread then busy-waits (`sched_yield`) for about 2^28 cycles before it sleeps: in
/// every process, whether it calls BLAS or not. `openblas_set_num_threads(1)` does not
/// stop them. While they spin they take cores from the real work, in pack-imagenet from
/// the decoders (BENCHMARKS.md, "Data").
public enum BLASThreads {
    /// Joins OpenBLAS's pool threads (`blas_thread_shutdown_`, which OpenBLAS also
    /// uses around `fork`); a later multi-threaded call (`openblas_set_num_threads(n > 1)`)
    /// starts them again. Looked up at run time, so an OpenBLAS built without the
    /// pool (serial, OpenMP) is left as it is. Call it while no multi-threaded BLAS call
    /// runs (single-threaded calls do not use the pool). Calls are serialised here:
    /// OpenBLAS checks that the pool is running before it takes its own lock, so two
    /// threads calling at once (contexts created concurrently, as estimate-acc's jobs and
    /// parallel tests do) would both join the same threads.
    public static func stopIdlePool() {
        typealias Shutdown = @convention(c) () -> Int32
        // nil is RTLD_DEFAULT: the symbol wherever the process loaded it.
        guard let symbol = dlsym(nil, "blas_thread_shutdown_") else { return }
        serial.withLock { _ in _ = unsafeBitCast(symbol, to: Shutdown.self)() }
    }

    private static let serial = Mutex(())
}

/// The kernels OpenBLAS runs. A DYNAMIC_ARCH build (Debian's) picks them by CPU when it
/// loads, unless `OPENBLAS_CORETYPE` names a set: on an AVX-512 CPU, "Haswell" (AVX2)
/// halves sgemm's rate against the library's own AVX-512 choice (BENCHMARKS.md, "OpenBLAS's
/// kernels", at the top).
/// Benchmarks print it beside every peak they measure.
public enum BLASKernels {
    /// The kernel set OpenBLAS runs ("Haswell", "SkylakeX", "Cooperlake", ...).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// `OPENBLAS_CORETYPE` as this process sees it, "unset" when it is not set.
    public static var coreTypeSetting: String {
        ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"
    }
}

/// Threads, BLAS configuration and scratch memory for the kernels.
///
/// **Threading policy (measured, see BENCHMARKS.md "Kernels"):** OpenBLAS runs
/// single-threaded (`openblas_set_num_threads(1)`) and all parallelism is ours:
/// every GEMM is split into `workers` independent row or column blocks run on our
/// `WorkerPool` (not `DispatchQueue.concurrentPerform`, whose per-call thread wake-up
/// cost more than many kernels take), and the vector kernels split their batch or
/// rows the same way. OpenBLAS worker threads busy-wait for a while after each call,
/// so mixing its pool with our own parallel loops makes both fight for the same
/// cores; with one pool there is no oversubscription, and splitting the GEMM's
/// largest dimension ourselves was measured to be as fast as or faster than
/// OpenBLAS's own threading on the network's GEMM shapes.
///
/// `openblas_set_num_threads` is process-wide state of the C library: creating a
/// context sets it, so use one context per process.
public final class ComputeContext {
    /// Number of parallel tasks our loops and GEMM splits use.
    public let workers: Int
    /// Scratch memory shared by all kernels run with this context.
    public let workspace: Workspace
    /// The vector instructions of our own kernels (AVX-512 where the CPU has it).
    public let vectorISA: VectorISA
    /// The threads of `parallel`.
    private let pool: WorkerPool

    /// - Parameters:
    ///   - workers: parallel tasks (default: the cores this process may use).
    ///   - blasThreads: threads OpenBLAS itself may use inside one call; 1 (default)
    ///     leaves all parallelism to `workers` (see the type's documentation).
    ///   - vectorISA: the instruction set of our own kernels (default: the CPU's widest,
    ///     `VectorISA.preferred`); must be one the CPU supports.
    public init(workers: Int = Cores.available, blasThreads: Int = 1, vectorISA: VectorISA = .preferred) {
        precondition(workers >= 1 && blasThreads >= 1, "ComputeContext: need at least one thread")
        precondition(vectorISA.isSupported, "ComputeContext: this CPU cannot run \(vectorISA) kernels")
        self.workers = workers
        self.vectorISA = vectorISA
        self.workspace = Workspace()
        self.pool = WorkerPool(workers: workers)
        openblas_set_num_threads(Int32(blasThreads))
        if blasThreads == 1 { BLASThreads.stopIdlePool() }
    }

    /// Runs `body(task)` for `task` in `0..<tasks`, in parallel when `tasks > 1`, on
    /// this context's `WorkerPool` (the calling thread takes part). The tasks write
    /// disjoint memory by construction (each kernel documents its partition). A call
    /// from inside a task runs its tasks inline.
    public func parallel(_ tasks: Int, _ body: (Int) -> Void) {
        pool.run(tasks, body)
    }

    /// Splits `0..<count` into at most `workers` contiguous chunks of at least
    /// `minChunk` items (rounded to multiples of `align`) and runs them in parallel;
    /// `body(chunkIndex, range)`. Returns the number of chunks used.
    @discardableResult
    @inlinable public func parallelChunks(_ count: Int, minChunk: Int = 1, align: Int = 1,
                                          _ body: (Int, Range<Int>) -> Void) -> Int {
        let chunks = chunkCount(count, minChunk: minChunk)
        if chunks <= 1 {
            if count > 0 { body(0, 0..<count) }
            return count > 0 ? 1 : 0
        }
        var per = (count + chunks - 1) / chunks
        per = (per + align - 1) / align * align
        let used = (count + per - 1) / per
        parallel(used) { i in
            body(i, (i * per)..<min(count, (i + 1) * per))
        }
        return used
    }

    /// How many chunks `parallelChunks` would use.
    @inlinable public func chunkCount(_ count: Int, minChunk: Int = 1) -> Int {
        max(1, min(workers, count / max(minChunk, 1)))
    }
}
