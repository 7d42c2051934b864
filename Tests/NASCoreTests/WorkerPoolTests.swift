import System
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

/// OpenBLAS's own pool, which busy-waits ~0.1 s after the library loads, is stopped
/// by `BLASThreads.stopIdlePool` (every tool calls it first thing; a single-threaded
/// `ComputeContext` calls it too) and BLAS still computes afterwards.
@Suite("OpenBLAS thread pool")
struct BLASThreadsTests {
    // OpenBLAS marks its pool running in `blas_server_avail`; a build without the
    // pool (serial, OpenMP) has no such symbol, and then there is nothing to stop.
    @Test(.enabled(if: dlsym(nil, "blas_server_avail") != nil, "this OpenBLAS has no thread pool (serial or OpenMP build): nothing to stop"))
    func stopIdlePoolStopsThePoolAndBLASStillWorks() throws {
        let avail = try #require(dlsym(nil, "blas_server_avail"))
        let running = avail.assumingMemoryBound(to: Int32.self)
        let ctx = ComputeContext(workers: 1)  // blasThreads 1: stops the pool
        #expect(running.pointee == 0)
        BLASThreads.stopIdlePool()  // again: harmless
        #expect(running.pointee == 0)
        // A GEMM after the stop still gives the right product.
        let (m, n, k) = (33, 17, 29)
        let a = (0..<(m * k)).map { Float(($0 * 7) % 11) - 5 }
        let b = (0..<(k * n)).map { Float(($0 * 5) % 13) - 6 }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Gemm.sgemm(ctx, transA: false, transB: false, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                       b: bp.baseAddress!, ldb: n, beta: 0, c: cp.baseAddress!, ldc: n)
        } } }
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for p in 0..<k { s += a[i * k + p] * b[p * n + j] }
            #expect(c[i * n + j] == s)
        } }
    }
}
