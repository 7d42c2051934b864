/// What the reference generator puts in a state_dict entry (GENERATOR.md,
/// section 3). Rows are tested top to bottom on the name's ending, then the rank.
public enum ReferenceRule: Sendable, Equatable {
    /// Row 1: `num_batches_tracked`, an int64 buffer left at 0 (no generator call).
    case integerZero
    /// Rows 2-7: U(lo, hi) with the given binary64 bounds.
    case uniform(lo: Double, hi: Double)

}

/// A state_dict entry for which GENERATOR.md has no rule (the model never has one).
public struct ReferenceGeneratorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var shape: [Int]
    public var description: String {
        "reference generator: no rule for state_dict entry '\(name)' with shape \(shape)"
    }
}

extension ReferenceGenerator {
    /// The rule of GENERATOR.md section 3 for state_dict entry `name` of `shape`
    /// (the supernet's full shape), together with its `gen.py` rule name.
    ///
    /// Conv weights (rank 4, `[O, I, kh, kw]`) get `a = 3 / sqrt(O * kh * kw)`
    /// (PyTorch's fan_out; not divided by groups), the linear weight (rank 2,
    /// `[out, in]`) `a = 3 / sqrt(in)`; both U(-a, a) with `a` in binary64.
    public static func rule(name: String, shape: [Int]) throws(ReferenceGeneratorError) -> (rule: ReferenceRule, ruleName: String) {
        let rank = shape.count
        if name.hasSuffix("num_batches_tracked") { return (.integerZero, "int_zero") }
        if name.hasSuffix("running_mean") { return (.uniform(lo: -0.1, hi: 0.1), "running_mean") }
        if name.hasSuffix("running_var") { return (.uniform(lo: 0.5, hi: 1.5), "running_var") }
        if name.hasSuffix("bias") { return (.uniform(lo: -0.1, hi: 0.1), "bias") }
        if name.hasSuffix("weight") {
            switch rank {
            case 1:
                return (.uniform(lo: 0.5, hi: 1.5), "weight1d")
            case 4:
                let a = 3.0 / Double(shape[0] * shape[2] * shape[3]).squareRoot()
                return (.uniform(lo: -a, hi: a), "weight4d")
            case 2:
                let a = 3.0 / Double(shape[1]).squareRoot()
                return (.uniform(lo: -a, hi: a), "weight2d")
            default:
                break
            }
        }
        throw ReferenceGeneratorError(name: name, shape: shape)
    }

    /// The values of state_dict entry `name` with the supernet's full `shape`,
    /// row-major (PyTorch layout, e.g. OIHW for convs). `num_batches_tracked`
    /// gives `[0]` (the int64 zero, as a Float). Throws for names without a rule.
    public static func tensor(name: String, shape: [Int]) throws(ReferenceGeneratorError) -> [Float] {
        precondition(shape.allSatisfy { $0 >= 0 }, "shape dimensions must be non-negative")
        let count = shape.reduce(1, *)
        switch try rule(name: name, shape: shape).rule {
        case .integerZero:
            return [Float](repeating: 0, count: count)
        case .uniform(let lo, let hi):
            return values(name: name, count: count, lo: lo, hi: hi)
        }
    }

    /// Input images `[batch, 3, resolution, resolution]`, **NCHW** row-major
    /// (the PyTorch layout; transpose for our NHWC kernels), U(-2, 2) of
    /// `name` (default `"input"`). A smaller batch is a prefix of a larger one.
    public static func input(batch: Int, resolution: Int, name: String = "input") -> [Float] {
        precondition(batch >= 0 && resolution >= 0, "batch and resolution must be non-negative")
        return values(name: name, count: batch * 3 * resolution * resolution, lo: -2, hi: 2)
    }

    /// Training labels: `label_i = floor(u("label", i) * classes)`, exact in binary64.
    public static func labels(count: Int, classes: Int, name: String = "label") -> [Int32] {
        precondition(count >= 0 && classes > 0 && classes <= Int(Int32.max), "need count >= 0 and 0 < classes <= Int32.max")
        let h = fnv1a64(name)
        return (0 ..< count).map { i in
            Int32((unit(hash: h, index: i) * Double(classes)).rounded(.down))
        }
    }
}
