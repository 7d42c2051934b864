import Foundation

/// Axis ticks at "nice" steps (1, 2 or 5 times a power of ten).
public struct Ticks: Sendable, Equatable {
    /// Rounded outward range that contains the data: first and last tick.
    public var lower: Double
    public var upper: Double
    public var step: Double

    /// Ticks covering [min, max] with about `target` intervals. An empty or
    /// one-value range is widened around its value first.
    public init(min: Double, max: Double, target: Int = 6) {
        precondition(min.isFinite && max.isFinite && min <= max && target >= 1)
        var lo = min, hi = max
        if hi - lo < 1e-12 * Swift.max(1, abs(lo)) {
            let pad = Swift.max(abs(lo) * 0.05, 0.5)
            lo -= pad
            hi += pad
        }
        let raw = (hi - lo) / Double(target)
        let magnitude = pow(10, floor(log10(raw)))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        step = nice * magnitude
        lower = floor(lo / step + 1e-9) * step
        upper = ceil(hi / step - 1e-9) * step
    }

    /// The tick values from `lower` to `upper`, computed from integer indices
    /// so that no rounding error accumulates.
    public var values: [Double] {
        let n = Int(((upper - lower) / step).rounded())
        return (0...n).map { lower + Double($0) * step }
    }

    /// A tick value as text with just the decimals the step needs.
    public func label(_ v: Double) -> String {
        let decimals = Swift.max(0, Int(-floor(log10(step) + 1e-9)))
        return format(v, decimals: decimals)
    }
}

/// Fixed-point text: `decimals` digits after the point ("-0" printed as "0").
func format(_ v: Double, decimals: Int) -> String {
    let s = String(format: "%.\(decimals)f", v)
    return Double(s) == 0 ? String(format: "%.\(decimals)f", 0.0) : s
}
