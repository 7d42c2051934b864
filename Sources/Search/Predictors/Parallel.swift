import System

/// `body(0)...body(count - 1)` computed on the shared worker pool, results in index
/// order. `body` must not depend on which thread runs it (each index brings its own
/// random stream), so the result is the same as a serial map.
func parallelMap<T: Sendable>(count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    WorkerPool.shared.map(count, body)
}
