import Dispatch
import Foundation
import Synchronization

/// Items computed on `jobs` threads and handed to `deliver` in submission order,
/// each as soon as it and all before it are done: the pipeline behind
/// `estimate-acc` (subnets evaluated concurrently, lines written in input order).
///
/// Unlike `WorkerPool.run` (fork-join: the caller waits for one batch of tasks),
/// items arrive while others run, so the `jobs` loops run on one `WorkerPool` call
/// made from a background thread, each loop taking items off a shared queue.
/// `deliver` runs under the queue's lock, on whichever thread completed the item
/// that made the prefix complete; it is never called concurrently. Items given
/// with a ready result (a cache hit) go through the same order. Call `finish()`
/// before dropping the queue: its threads hold it until then.
public final class OrderedWorkQueue<Input: Sendable, Output: Sendable>: @unchecked Sendable {
    private struct State {
        var queue: [(Int, Input)] = []
        var done: [Int: Output] = [:]
        var nextToDeliver = 0
        var submitted = 0
        var closed = false
    }

    private let work: @Sendable (Input, Int) -> Output
    private let deliver: (Int, Output) -> Void
    private let state = Mutex(State())
    /// One signal per queued item, and one per loop at `finish`.
    private let available = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let jobs: Int

    /// - Parameters:
    ///   - work: computes an item on loop index 0..<jobs (one thread per loop).
    ///   - deliver: receives (sequence number, output) in order.
    public init(jobs: Int, work: @escaping @Sendable (Input, Int) -> Output, deliver: @escaping (Int, Output) -> Void) {
        precondition(jobs >= 1)
        self.jobs = jobs
        self.work = work
        self.deliver = deliver
        let thread = Thread { [self] in
            let pool = WorkerPool(workers: jobs)
            pool.run(jobs) { loop(job: $0) }
            finished.signal()
        }
        thread.name = "OrderedWorkQueue"
        thread.start()
    }

    /// Queues an item; returns its sequence number.
    @discardableResult
    public func submit(_ input: Input) -> Int {
        let seq = state.withLock { s in
            defer { s.submitted += 1 }
            s.queue.append((s.submitted, input))
            return s.submitted
        }
        available.signal()
        return seq
    }

    /// Adds an item whose output is already known.
    @discardableResult
    public func submit(ready output: Output) -> Int {
        state.withLock { s in
            defer { s.submitted += 1 }
            s.done[s.submitted] = output
            flush(&s)
            return s.submitted
        }
    }

    /// Items submitted and not yet delivered.
    public var pending: Int { state.withLock { $0.submitted - $0.nextToDeliver } }

    /// Waits until every submitted item is delivered, then stops the threads.
    public func finish() {
        let first = state.withLock { s in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        for _ in 0..<jobs { available.signal() }
        finished.wait()
    }

    private func loop(job: Int) {
        while true {
            available.wait()
            let item: (Int, Input)? = state.withLock { s in s.queue.isEmpty ? nil : s.queue.removeFirst() }
            // No item: the signal was one of finish()'s, sent after every item's.
            guard let (seq, input) = item else { return }
            let output = work(input, job)
            state.withLock { s in
                s.done[seq] = output
                flush(&s)
            }
        }
    }

    private func flush(_ s: inout State) {
        while let out = s.done.removeValue(forKey: s.nextToDeliver) {
            deliver(s.nextToDeliver, out)
            s.nextToDeliver += 1
        }
    }
}
