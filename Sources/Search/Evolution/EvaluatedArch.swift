import FileFormats
import Supernet

/// An arch with its cost and its evaluator's answer: `line` is the output
/// JSON line (the arch's official keys, `flops`, `params`, `acc1` and every
/// other key the evaluator returned).
public struct EvaluatedArch: Sendable {
    public var arch: Arch
    /// MFLOPs per image (official formula), unrounded.
    public var flops: Double
    /// Parameters in millions.
    public var params: Double
    /// Top-1 accuracy in percent, from the evaluator.
    public var acc1: Double
    public var line: JSONValue
    /// The search's cost (`SearchObjective`): MFLOPs, or predicted milliseconds.
    public var cost: Double

    public init(arch: Arch, flops: Double, params: Double, acc1: Double, line: JSONValue, cost: Double? = nil) {
        self.arch = arch
        self.flops = flops
        self.params = params
        self.acc1 = acc1
        self.line = line
        self.cost = cost ?? flops
    }
}

/// Inclusive bounds of a search's cost: MFLOPs, or milliseconds under a latency objective.
public struct FlopsBounds: Sendable, Equatable {
    public var min: Double
    public var max: Double

    public init(min: Double, max: Double) {
        precondition(min <= max, "FLOPs bounds [\(min), \(max)] are empty")
        self.min = min
        self.max = max
    }

    public func contains(_ flops: Double) -> Bool { flops >= min && flops <= max }
}
