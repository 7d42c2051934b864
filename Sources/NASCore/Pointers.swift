import System
// Internal helpers for the kernels' unsafe-pointer code.

extension UnsafeBufferPointer {
    /// The base address; traps on an empty buffer without storage.
    @inline(__always) var base: UnsafePointer<Element> {
        guard let b = baseAddress else { preconditionFailure("NASCore: buffer has no storage") }
        return b
    }
}

extension UnsafeMutableBufferPointer {
    /// The base address; traps on an empty buffer without storage.
    @inline(__always) var base: UnsafeMutablePointer<Element> {
        guard let b = baseAddress else { preconditionFailure("NASCore: buffer has no storage") }
        return b
    }
}

/// Checks a buffer holds at least `count` elements (public entry points only).
@inline(__always) func requireCount<T>(_ b: UnsafeBufferPointer<T>, _ count: Int, _ what: @autoclosure () -> String) {
    precondition(b.count >= count, "NASCore: \(what()) has \(b.count) elements, needs \(count)")
}

@inline(__always) func requireCount<T>(_ b: UnsafeMutableBufferPointer<T>, _ count: Int, _ what: @autoclosure () -> String) {
    precondition(b.count >= count, "NASCore: \(what()) has \(b.count) elements, needs \(count)")
}

/// Unaligned 8-float vector load.
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Adds `v` to the 8 doubles at `p` (unaligned), as one vector load and store.
@inline(__always) func add8(_ v: SIMD8<Double>, to p: UnsafeMutablePointer<Double>) {
    let raw = UnsafeMutableRawPointer(p)
    raw.storeBytes(of: raw.loadUnaligned(as: SIMD8<Double>.self) + v, as: SIMD8<Double>.self)
}

/// Unaligned 8-float vector store.
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Loads `n < 8` floats into the low lanes of a zeroed vector.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for i in 0..<n { v[i] = p[i] }
    return v
}

/// Stores the low `n < 8` lanes.
@inline(__always) func storePartial(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}
