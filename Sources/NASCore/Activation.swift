/// Pointwise activations of the official model, forward and backward.
///
///   relu:     `y = max(x, 0)`,                 `y' = x > 0 ? 1 : 0`
///   swish:    `y = x · σ(x)`,                  `y' = σ(x) · (1 + x · (1 - σ(x)))`
///   hswish:   `y = x · relu6(x + 3) / 6`,      `y' = 0 (x ≤ -3), (2x + 3) / 6 (-3 < x < 3), 1 (x ≥ 3)`
///   hsigmoid: `y = relu6(x + 3) / 6`,          `y' = 1/6 (-3 < x < 3), else 0`
///   identity: `y = x`.
/// Derivatives at the kinks follow PyTorch's autograd of the official modules
/// (`relu6` passes gradient only strictly inside (0, 6)).
///
/// `σ(x) = 1 / (1 + exp(-x))` with `exp` evaluated by `FastExp` on a clamped argument,
/// so it is finite for every finite `x` (0 below -87, 1 above 87); relative error of
/// swish ≤ 4 float ulps away from its zero crossing (tested against Double).
public enum Activation: String, Sendable, CaseIterable {
    case identity, relu, swish, hswish, hsigmoid

    /// The official `act_func` names: "relu", "swish", "h_swish", "h_sigmoid", "none".
    public init?(officialName: String) {
        switch officialName {
        case "relu": self = .relu
        case "swish": self = .swish
        case "h_swish": self = .hswish
        case "h_sigmoid": self = .hsigmoid
        case "none", "identity": self = .identity
        default: return nil
        }
    }

    /// `1 / (1 + exp(-x))` with `exp(-x)` from `FastExp.expNegated8`.
    @inline(__always) static func sigmoid8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / FastExp.expNegated8(x, plus: 1)
    }

    /// Calls `body.run(K.self)` with this activation's kernel type, so that `body`'s
    /// loops are specialised for it (the switch is outside the loops).
    @inline(__always) func dispatch<Body: ActivationLoop>(_ body: Body) -> Body.Result {
        switch self {
        case .identity: return body.run(IdentityKernel.self)
        case .relu: return body.run(ReLUKernel.self)
        case .swish: return body.run(SwishKernel.self)
        case .hswish: return body.run(HSwishKernel.self)
        case .hsigmoid: return body.run(HSigmoidKernel.self)
        }
    }

    /// `y[i] = f(x[i])` for `count` elements; `y` may alias `x`. Parallel over chunks.
    public func forward(_ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>, count: Int) {
        requireCount(x, count, "x"); requireCount(y, count, "y")
        if self == .identity {
            if x.baseAddress != UnsafePointer(y.baseAddress) { y.base.update(from: x.base, count: count) }
            return
        }
        dispatch(ForwardLoop(ctx: ctx, x: x.base, y: y.base, count: count))
    }

    /// `dx[i] = dy[i] · f'(x[i])` from the forward's input `x`; `dx` (overwritten) may
    /// alias `dy`.
    public func backward(_ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,
                         dx: UnsafeMutableBufferPointer<Float>, count: Int) {
        requireCount(x, count, "x"); requireCount(dy, count, "dy"); requireCount(dx, count, "dx")
        dispatch(BackwardLoop(ctx: ctx, x: x.base, dy: dy.base, dx: dx.base, count: count))
    }

    private struct ForwardLoop: ActivationLoop {
        let ctx: ComputeContext, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int
        @inline(__always) func run<K: ActivationKernel>(_: K.Type) {
            let xp = x, yp = y
            ctx.parallelChunks(count, minChunk: 1 << 14, align: 8) { _, r in
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    store8(K.apply8(load8(xp + i)), yp + i)
                    i += 8
                }
                let t = r.upperBound - i
                if t > 0 { storePartial(K.apply8(loadPartial(xp + i, t)), yp + i, t) }
            }
        }
    }

    private struct BackwardLoop: ActivationLoop {
        let ctx: ComputeContext, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
        @inline(__always) func run<K: ActivationKernel>(_: K.Type) {
            let xp = x, gp = dy, dp = dx
            ctx.parallelChunks(count, minChunk: 1 << 14, align: 8) { _, r in
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    store8(K.gradient8(load8(xp + i), load8(gp + i)), dp + i)
                    i += 8
                }
                let t = r.upperBound - i
                if t > 0 { storePartial(K.gradient8(loadPartial(xp + i, t), loadPartial(gp + i, t)), dp + i, t) }
            }
        }
    }
}

/// One activation as a type, so that a kernel generic over it is specialised with the
/// activation's vector code inlined into its loop. (Passed as a closure instead, the
/// activation stayed an out-of-line call per 8 lanes, with its constants reloaded each
/// time, inside BN's loops; see BENCHMARKS.md "Kernels".)
public protocol ActivationKernel {
    /// `f(x)` on 8 lanes.
    static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float>
    /// `dy · f'(x)` on 8 lanes.
    static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float>
}

/// A loop to run with the kernel of an `Activation` known only at run time:
/// `activation.dispatch(loop)` switches once and calls the specialised `run`.
protocol ActivationLoop {
    associatedtype Result = Void
    func run<K: ActivationKernel>(_ kernel: K.Type) -> Result
}

/// `min(max(v, 0), 6)` with vector selects (`clamped` is scalarised).
@inline(__always) private func relu6(_ v: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6)
}

public enum IdentityKernel: ActivationKernel {
    @inline(__always) public static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float> { x }
    @inline(__always) public static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float> { dy }
}

public enum ReLUKernel: ActivationKernel {
    @inline(__always) public static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: 0, where: x .< 0) }
    @inline(__always) public static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float> {
        dy.replacing(with: 0, where: x .<= 0)
    }
}

public enum SwishKernel: ActivationKernel {
    @inline(__always) public static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float> { x / FastExp.expNegated8(x, plus: 1) }
    @inline(__always) public static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float> {
        let s = Activation.sigmoid8(x)
        return dy * (s * (1 + x * (1 - s)))
    }
}

public enum HSwishKernel: ActivationKernel {
    @inline(__always) public static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float> { x * (relu6(x + 3) * (1 / 6 as Float)) }
    @inline(__always) public static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float> {
        let mid = (2 * x + 3) * (1 / 6 as Float)
        let d = mid.replacing(with: 0, where: x .<= -3).replacing(with: 1, where: x .>= 3)
        return dy * d
    }
}

public enum HSigmoidKernel: ActivationKernel {
    @inline(__always) public static func apply8(_ x: SIMD8<Float>) -> SIMD8<Float> { relu6(x + 3) * (1 / 6 as Float) }
    @inline(__always) public static func gradient8(_ x: SIMD8<Float>, _ dy: SIMD8<Float>) -> SIMD8<Float> {
        (dy * (1 / 6 as Float)).replacing(with: SIMD8<Float>(), where: (x .<= -3) .| (x .>= 3))
    }
}

/// Vectorised `exp(-x) + plus` for Float: Cody–Waite range reduction `-x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, `e^r = 1 + r + r²·P(r)` with P of degree 4, and `2^n` built in the
/// exponent bits. The argument is clamped to `[-88.37, 87.33]`, so `exp(-x)` is finite
/// and ≥ 2^-126 (no inf, no NaN for finite input); relative error ≤ 3 ulp (tested).
public enum FastExp {
    /// `exp(-x) + plus`: the sigmoid's denominator with `plus = 1`. The negation is folded
    /// into the constants and the add into a fused multiply-add, because swish is
    /// compute-bound and every instruction per 8 lanes is its speed.
    @inline(__always) public static func expNegated8(_ x0: SIMD8<Float>, plus: Float) -> SIMD8<Float> {
        // Clamp tests on the running value compile to vminps/vmaxps.
        var x = x0.replacing(with: 87.33, where: x0 .> 87.33)
        x = x.replacing(with: -88.37, where: x .< -88.37)
        let magic = SIMD8<Float>(repeating: 12_582_912)
        // t = -x·log2(e) + 1.5·2^23 rounds to the nearest integer n, held in t's low
        // mantissa bits; n = t - 1.5·2^23 exactly. q = x + n·ln2 = -r, with r the reduced
        // argument of exp(-x) = 2^n·e^r (ln2 in two parts, Cody–Waite).
        let t = magic.addingProduct(x, SIMD8(repeating: -1.44269504088896341))
        let n = t - magic
        var q = x.addingProduct(n, SIMD8(repeating: 0.693359375))
        q = q.addingProduct(n, SIMD8(repeating: -2.12194440e-4))
        // exp(r) = 1 + r + r²·P(r) at r = -q: P's odd coefficients change sign. P by
        // Estrin's scheme (three dependent steps instead of Horner's five): the loop is
        // bound by how many iterations the scheduler can hold, so latency is speed.
        let q2 = q * q, q4 = q2 * q2
        // P has degree 4 (one term fewer than Cephes' expf, which this used before): a
        // least-squares fit of (e^r - 1 - r) / r² on Chebyshev nodes of the reduced
        // range, weighted for relative error, whose e^r is within 3.8e-9 of exp
        // (float32 coefficients; a float ulp at 1 is 6e-8).
        let p01 = SIMD8<Float>(repeating: 4.9999988079e-1).addingProduct(q, SIMD8(repeating: -1.6666518152e-1))
        let p23 = SIMD8<Float>(repeating: 4.1669532657e-2).addingProduct(q, SIMD8(repeating: -8.3689158782e-3))
        let p = p01.addingProduct(q2, p23).addingProduct(q4, SIMD8(repeating: 1.3751407387e-3))
        let e = (-q).addingProduct(p, q2) + 1
        let tBits = unsafeBitCast(t, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((tBits &- 0x4B40_0000 &+ 127) &<< 23, to: SIMD8<Float>.self)
        return SIMD8(repeating: plus).addingProduct(e, scale)
    }
}
