import Dispatch
import Foundation
import NASCore
import Synchronization
import Testing

/// `ComputeContext.parallel` runs on the context's `WorkerPool`: every task exactly
/// once, whether the pool's threads are polling or asleep, nested calls inline, and
/// calls from several threads at once on one context.
@Suite("Worker pool")
struct WorkerPoolTests {
    /// Runs `tasks` tasks and returns how often each ran.
    static func counts(_ ctx: ComputeContext, tasks: Int) -> [Int] {
        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: tasks)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0)
        ctx.parallel(tasks) { i in hits[i] += 1 }
        return Array(hits)
    }

    @Test(arguments: [1, 2, 3, 4]) func everyTaskOnceForAnyWorkerCount(workers: Int) {
        let ctx = ComputeContext(workers: workers)
        for tasks in [0, 1, 2, 3, 5, 8, 17] {
            for _ in 0..<200 { #expect(Self.counts(ctx, tasks: tasks) == [Int](repeating: 1, count: tasks)) }
        }
    }

    @Test func callsAfterTheThreadsSleptStillRunEveryTask() {
        let ctx = ComputeContext(workers: 2)
        for round in 0..<20 {
            // Longer than the polling budget every other round, so the thread sleeps.
            if round % 2 == 0 { usleep(3_000) }
            #expect(Self.counts(ctx, tasks: 4) == [1, 1, 1, 1], "round \(round)")
        }
    }

    @Test func theWorkIsReallySharedAndVisibleAfterTheCall() {
        let ctx = ComputeContext(workers: 2)
        let n = 1 << 16
        let data = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
        defer { data.deallocate() }
        for round in 0..<50 {
            ctx.parallelChunks(n, minChunk: 1) { _, r in for i in r { data[i] = Double(i * round) } }
            var ok = true
            for i in stride(from: 0, to: n, by: 997) where data[i] != Double(i * round) { ok = false }
            #expect(ok, "round \(round)")
        }
    }

    @Test func nestedCallsRunInline() {
        let ctx = ComputeContext(workers: 2)
        let total = Atomic<Int>(0)
        ctx.parallel(3) { _ in
            ctx.parallel(4) { _ in total.add(1, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 12)
    }

    @Test func callsFromSeveralThreadsAtOnce() {
        nonisolated(unsafe) let ctx = ComputeContext(workers: 2)
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<500 { ctx.parallel(3) { _ in total.add(1, ordering: .relaxed) } }
        }
        #expect(total.load(ordering: .relaxed) == 4 * 500 * 3)
    }

    @Test func contextsComeAndGo() {
        for _ in 0..<100 {
            let ctx = ComputeContext(workers: 2)
            #expect(Self.counts(ctx, tasks: 2) == [1, 1])
        }
    }
}
