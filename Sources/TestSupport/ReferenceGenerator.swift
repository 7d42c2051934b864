/// File-free deterministic weights, inputs and labels (genref generator,
/// version 1; the contract is `shared/reference/GENERATOR.md`, the numpy
/// reference `gen.py`).
///
/// Every tensor is a pure function of its name and shape: element `k` of the
/// row-major (C order) flattening of tensor `name` is
///
///     r     = splitmix64(fnv1a64(name) &+ k) >> 40          // in [0, 2^24)
///     u     = Double(r) / 2^24                              // exact, in [0, 1)
///     value = Float(lo + (hi - lo) * u)                     // binary64, rounded once to binary32
///
/// All integer arithmetic wraps modulo 2^64. The float arithmetic is binary64
/// with one rounding per operation: Swift never contracts `a + b * c` into a
/// fused multiply-add unless asked, so the values are bit-identical to
/// `gen.py` on every machine. No state is carried between tensors, so the
/// order of generation does not matter and no RNG state needs saving.
public enum ReferenceGenerator {
    /// FNV-1a, 64 bit, over the UTF-8 bytes of `name`.
    public static func fnv1a64(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// The splitmix64 finaliser (Steele, Lea, Flood 2014) applied to `z + golden gamma`.
    @inline(__always)
    public static func splitmix64(_ z: UInt64) -> UInt64 {
        var x = z &+ 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// `u(name, k)`: a multiple of 2^-24 in [0, 1), given `fnv1a64(name)`.
    @inline(__always)
    public static func unit(hash: UInt64, index: Int) -> Double {
        precondition(index >= 0, "element index must be non-negative")
        let r = splitmix64(hash &+ UInt64(index)) >> 40
        return Double(r) / 16_777_216.0
    }

    /// `u(name, k)` for element `index` of tensor `name`.
    public static func unit(name: String, index: Int) -> Double {
        unit(hash: fnv1a64(name), index: index)
    }

    /// One element of U(lo, hi): `Float(lo + (hi - lo) * u(name, index))`.
    public static func value(name: String, index: Int, lo: Double, hi: Double) -> Float {
        Float(lo + (hi - lo) * unit(name: name, index: index))
    }

    /// Fills `buffer` with elements `0 ..< buffer.count` of U(lo, hi) for `name`.
    /// Allocates nothing.
    public static func fill(_ buffer: UnsafeMutableBufferPointer<Float>, name: String, lo: Double, hi: Double) {
        let h = fnv1a64(name)
        let width = hi - lo
        for k in 0 ..< buffer.count {
            let r = splitmix64(h &+ UInt64(k)) >> 40
            let u = Double(r) / 16_777_216.0
            buffer[k] = Float(lo + width * u)
        }
    }

    /// Elements `0 ..< count` of U(lo, hi) for `name`.
    public static func values(name: String, count: Int, lo: Double, hi: Double) -> [Float] {
        precondition(count >= 0, "count must be non-negative")
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(buffer, name: name, lo: lo, hi: hi)
            initialized = count
        }
    }
}
