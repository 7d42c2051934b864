import Dispatch
import System

/// `body(0)...body(count - 1)` computed on all cores, results in index order.
/// `body` must not depend on which thread runs it (each index brings its own
/// random stream), so the result is the same as a serial map.
func parallelMap<T: Sendable>(count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    guard count > 1 else { return (0..<count).map(body) }
    let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
    results.initialize(repeating: nil)
    defer { results.deinitialize(); results.deallocate() }
    nonisolated(unsafe) let out = results
    // Each index writes only its own slot.
    DispatchQueue.concurrentPerform(iterations: count) { i in out[i] = body(i) }
    return results.map { slot in
        guard let v = slot else { preconditionFailure("parallelMap: index left unfilled") }
        return v
    }
}
