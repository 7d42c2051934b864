import Dispatch
import Foundation
import Synchronization

/// The project's one kind of thread pool (fork-join): behind `ComputeContext.parallel`
/// (the kernels), `WorkerPool.shared` (coarse loops: rendering a batch of images,
/// fitting trees, decoding images) and `OrderedWorkQueue`. `workers - 1` threads that, after
/// each parallel call, keep polling for the next one for a short while
/// (`spinPolls`) before they sleep, plus the calling thread, which runs tasks too.
///
/// Why not `DispatchQueue.concurrentPerform`: it wakes a pool thread for every call,
/// and that wake-up takes longer than many of our kernels, so a parallel call could
/// be slower than the same work on one thread. A thread that is still polling picks
/// the next call up without being woken. BENCHMARKS.md "Kernels" has the measurements.
///
/// Protocol: worker `k` (the caller is worker 0) runs tasks `k, k + workers, …` of
/// call `g` once its mailbox reads `g`, then stores `g` in its `done`; the caller
/// returns only when every worker's `done` reads `g`, so no thread still holds a call's
/// closure or task count when the next call replaces them.
///
/// The polling is bounded, so an idle process does not hold the cores; OpenBLAS runs
/// single-threaded (see `ComputeContext`), so no other pool competes. A call made
/// from inside a task (nested parallelism), or while another thread's call is running
/// on the same pool, runs its tasks inline, in order.
public final class WorkerPool: @unchecked Sendable {
    /// One thread's mailbox; padded apart so the threads do not share cache lines.
    private final class Slot: @unchecked Sendable {
        let call = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let sleeping = Atomic<Bool>(false)
        let wake = DispatchSemaphore(value: 0)
        private let padding: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// State shared with the threads; `deinit` stops them.
    private final class Shared: @unchecked Sendable {
        let workers: Int
        let slots: [Slot]
        let stop = Atomic<Bool>(false)
        // Written by the caller before it posts a call to the mailboxes (release), read
        // by a thread after it sees the call (acquire); not written again until every
        // thread has reported the call done.
        var job: ((Int) -> Void)?
        var tasks = 0

        init(workers: Int) {
            self.workers = workers
            slots = (0..<workers).map { _ in Slot() }
        }

        func runShare(_ k: Int) {
            guard let job else { return }
            var i = k
            while i < tasks {
                job(i)
                i += workers
            }
        }
    }

    /// Polls of the mailbox before a thread sleeps: enough for the next parallel call
    /// of a running computation to find it awake, few enough that an idle process soon
    /// lets its cores go.
    static let spinPolls = 20_000

    public let workers: Int
    private let shared: Shared
    private var generation = 0
    /// Set while a call is running: a nested call runs inline.
    private let busy = Atomic<Bool>(false)

    public init(workers: Int) {
        self.workers = max(workers, 1)
        shared = Shared(workers: self.workers)
        for k in 1..<self.workers {
            let s = shared
            let thread = Thread { WorkerPool.threadLoop(s, k) }
            thread.stackSize = 8 << 20
            thread.name = "worker \(k)"
            thread.start()
        }
    }

    deinit {
        shared.stop.store(true, ordering: .sequentiallyConsistent)
        for k in 1..<workers { shared.slots[k].wake.signal() }
    }

    private static func threadLoop(_ s: Shared, _ k: Int) {
        let slot = s.slots[k]
        var seen = 0
        while !s.stop.load(ordering: .relaxed) {
            var g = slot.call.load(ordering: .acquiring)
            var polls = 0
            while g == seen && polls < spinPolls {
                polls += 1
                g = slot.call.load(ordering: .acquiring)
            }
            if g == seen {
                // Sleep. The caller posts, then checks `sleeping`; this thread sets
                // `sleeping`, then checks the mailbox (both sequentially consistent):
                // one of the two sees the other, so no call is missed. A signal that
                // finds this thread awake only costs one more loop.
                slot.sleeping.store(true, ordering: .sequentiallyConsistent)
                if slot.call.load(ordering: .sequentiallyConsistent) == seen && !s.stop.load(ordering: .sequentiallyConsistent) {
                    slot.wake.wait()
                }
                slot.sleeping.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            seen = g
            s.runShare(k)
            slot.done.store(g, ordering: .releasing)
        }
    }

    /// Runs `body(task)` for every task in `0..<tasks`, each exactly once, spread over
    /// the calling thread and the pool's threads; returns when all are done.
    public func run(_ tasks: Int, _ body: (Int) -> Void) {
        guard tasks > 1, workers > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<tasks { body(i) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { escapable in
            let s = shared
            s.job = escapable
            s.tasks = tasks
            generation += 1
            let g = generation
            for k in 1..<workers {
                let slot = s.slots[k]
                slot.call.store(g, ordering: .sequentiallyConsistent)
                if slot.sleeping.load(ordering: .sequentiallyConsistent) { slot.wake.signal() }
            }
            s.runShare(0)
            for k in 1..<workers {
                while s.slots[k].done.load(ordering: .acquiring) != g {}
            }
            s.job = nil
        }
    }
}

extension WorkerPool {
    /// A process-wide pool for coarse parallel loops outside the kernels (rendering a
    /// batch of images, fitting trees): as many workers as the process has cores. A
    /// call while another is running (from another thread) runs its tasks inline.
    public static let shared = WorkerPool(workers: Cores.available)

    /// `body(0)...body(count - 1)` on the pool, results in index order: the same as a
    /// serial map when `body` does not depend on the thread that runs it.
    public func map<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
        guard count > 1 else { return (0..<count).map(body) }
        let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        // Each task writes only its own slot.
        run(count) { i in results[i] = body(i) }
        return results.map { slot in
            guard let v = slot else { preconditionFailure("WorkerPool.map: index left unfilled") }
            return v
        }
    }
}
