import Foundation

/// The floating-point types the losses are generic over (`Float`, `Double`):
/// binary floating point plus the two elementary functions softmax needs.
///
/// The names are spelled out (`exponential`, `logarithm`) so they cannot clash
/// with `exp`/`log` from Foundation or swift-numerics.
public protocol LossScalar: BinaryFloatingPoint, Sendable {
    /// e^x, correctly rounded or faithfully rounded by the C library.
    static func exponential(_ x: Self) -> Self
    /// The natural logarithm; `logarithm(0) = -infinity`.
    static func logarithm(_ x: Self) -> Self
}

extension Float: LossScalar {
    @inlinable public static func exponential(_ x: Float) -> Float { Foundation.expf(x) }
    @inlinable public static func logarithm(_ x: Float) -> Float { Foundation.logf(x) }
}

extension Double: LossScalar {
    @inlinable public static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
    @inlinable public static func logarithm(_ x: Double) -> Double { Foundation.log(x) }
}

/// The softmax normaliser of one row of logits, kept in log space:
/// `log_softmax(x)_c = (x_c - max) - logSum`, `softmax(x)_c = exp(x_c - max) / sum`
/// with `sum = sum_c exp(x_c - max)` in [1, C]. This is how PyTorch's CPU
/// `log_softmax`/`softmax` compute, and it stays finite for any finite logits
/// (no exp of a positive number, no log of 0).
///
/// Row reductions here and in the losses accumulate in Double: a plain Float
/// running sum of 1000 terms next to a dominant 1 drops every term below
/// half an ulp of 1 (measured: 1.2e-5 relative gradient error on a confident
/// row, 10x PyTorch's vectorised sum); with Double the Float results stay
/// within ~1e-6 of the float64 reference.
@usableFromInline
struct SoftmaxRow<T: LossScalar> {
    @usableFromInline let max: T
    @usableFromInline let sum: T
    @usableFromInline let logSum: T
    @usableFromInline let temperature: T

    /// The row is divided by `temperature` first (as the official code does: `logits / T`).
    @inlinable
    init(_ row: UnsafeBufferPointer<T>, temperature: T = 1) {
        assert(!row.isEmpty)
        var m = -T.infinity
        for x in row { m = Swift.max(m, x / temperature) }
        var s = 0.0
        for x in row { s += Double(T.exponential(x / temperature - m)) }
        max = m
        sum = T(s)
        logSum = T(Foundation.log(s))
        self.temperature = temperature
    }

    /// log softmax of the row element `x`.
    @inlinable func logProbability(_ x: T) -> T { (x / temperature - max) - logSum }

    /// softmax of the row element `x` (`exp(x - max) / sum`, PyTorch's order).
    @inlinable func probability(_ x: T) -> T { T.exponential(x / temperature - max) / sum }
}
