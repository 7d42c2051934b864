import Foundation
import NASCore

// Shared helpers for the kernel tests: owned buffers, seeded data, error metrics,
// finite differences and naive Double-precision references of every kernel.

/// An owned float buffer for passing to the kernels.
final class Buf {
    let p: UnsafeMutableBufferPointer<Float>
    init(count: Int, value: Float = 0) {
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: value)
    }
    convenience init(_ a: [Float]) {
        self.init(count: a.count)
        for i in a.indices { p[i] = a[i] }
    }
    deinit { p.deallocate() }
    var r: UnsafeBufferPointer<Float> { UnsafeBufferPointer(p) }
    var m: UnsafeMutableBufferPointer<Float> { p }
    func array(_ count: Int) -> [Float] { Array(p[0..<count]) }
    var doubles: [Double] { p.map(Double.init) }
}

func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var g = SeededRandom(seed: seed)
    return (0..<count).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * g.uniformFloat() }
}

/// `max|a - b| / max(max|b|, 1e-12)`: error relative to the reference's scale.
func relError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "relError: \(a.count) vs \(b.count)")
    var num = 0.0, den = 1e-12
    for i in a.indices {
        num = max(num, abs(Double(a[i]) - b[i]))
        den = max(den, abs(b[i]))
    }
    return num / den
}

/// Central finite differences in Double of `loss` at `x` for the given indices.
func finiteDifference(_ x: [Double], indices: [Int], h: Double = 1e-4, _ loss: ([Double]) -> Double) -> [Double] {
    var xx = x
    return indices.map { i in
        let v = xx[i]
        xx[i] = v + h; let lp = loss(xx)
        xx[i] = v - h; let lm = loss(xx)
        xx[i] = v
        return (lp - lm) / (2 * h)
    }
}

/// At most `limit` indices of `0..<count`, spread deterministically.
func sampleIndices(_ count: Int, limit: Int = 60, seed: UInt64 = 7) -> [Int] {
    if count <= limit { return Array(0..<count) }
    var g = SeededRandom(seed: seed)
    return (0..<limit).map { _ in Int(g.next() % UInt64(count)) }
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// Naive Double references, written straight from the formulas with no attempt at speed.
enum Naive {
    /// Convolution with 'same' padding; `depthwise` uses groups = channels and weight
    /// `[outMax, 1, kMax, kMax]`. NHWC in and out.
    static func conv(_ x: [Double], _ s: Shape4, _ w: [Double], _ sl: ConvWeightSlice,
                     stride: Int, depthwise: Bool = false) -> [Double] {
        let k = sl.k, p = k / 2
        let ho = (s.h + 2 * p - k) / stride + 1, wo = (s.w + 2 * p - k) / stride + 1
        let cout = sl.cout
        var y = [Double](repeating: 0, count: s.n * ho * wo * cout)
        for n in 0..<s.n { for oh in 0..<ho { for ow in 0..<wo { for o in 0..<cout {
            var acc = 0.0
            for kh in 0..<k { for kw in 0..<k {
                let ih = oh * stride - p + kh, iw = ow * stride - p + kw
                guard ih >= 0, ih < s.h, iw >= 0, iw < s.w else { continue }
                if depthwise {
                    acc += x[((n * s.h + ih) * s.w + iw) * s.c + o] * w[sl.index(o, 0, kh, kw)]
                } else {
                    for i in 0..<sl.cin {
                        acc += x[((n * s.h + ih) * s.w + iw) * s.c + i] * w[sl.index(o, i, kh, kw)]
                    }
                }
            } }
            y[((n * ho + oh) * wo + ow) * cout + o] = acc
        } } } }
        return y
    }

    /// The depthwise convolution's gradients for output gradient `dy`, by the adjoint of
    /// `conv`'s loop: every (output, tap) pair adds `dy * w` to dx and `dy * x` to dW.
    /// dW `[c, k, k]` (kh-major per channel).
    static func depthwiseBackward(_ x: [Double], _ s: Shape4, _ w: [Double], _ sl: ConvWeightSlice,
                                  stride: Int, dy: [Double]) -> (dx: [Double], dw: [Double]) {
        let k = sl.k, p = k / 2, c = s.c
        let ho = (s.h + 2 * p - k) / stride + 1, wo = (s.w + 2 * p - k) / stride + 1
        var dx = [Double](repeating: 0, count: s.count), dw = [Double](repeating: 0, count: c * k * k)
        for n in 0..<s.n { for oh in 0..<ho { for ow in 0..<wo { for ch in 0..<c {
            let g = dy[((n * ho + oh) * wo + ow) * c + ch]
            for kh in 0..<k { for kw in 0..<k {
                let ih = oh * stride - p + kh, iw = ow * stride - p + kw
                guard ih >= 0, ih < s.h, iw >= 0, iw < s.w else { continue }
                let xi = ((n * s.h + ih) * s.w + iw) * c + ch
                dx[xi] += g * w[sl.index(ch, 0, kh, kw)]
                dw[(ch * k + kh) * k + kw] += g * x[xi]
            } }
        } } } }
        return (dx, dw)
    }

    static func addBias(_ y: inout [Double], _ b: [Double], c: Int) {
        for i in y.indices { y[i] += b[i % c] }
    }

    /// Training-mode BN output, batch mean and biased variance.
    static func batchNorm(_ x: [Double], _ s: Shape4, gamma: [Double], beta: [Double]) -> (y: [Double], mean: [Double], varB: [Double]) {
        let m = s.pixels, c = s.c
        var mean = [Double](repeating: 0, count: c), v = mean
        for r in 0..<m { for ch in 0..<c { mean[ch] += x[r * c + ch] / Double(m) } }
        for r in 0..<m { for ch in 0..<c { let d = x[r * c + ch] - mean[ch]; v[ch] += d * d / Double(m) } }
        var y = x
        for r in 0..<m { for ch in 0..<c {
            y[r * c + ch] = gamma[ch] * (x[r * c + ch] - mean[ch]) / (v[ch] + 1e-5).squareRoot() + beta[ch]
        } }
        return (y, mean, v)
    }

    static func act(_ a: Activation, _ x: Double) -> Double {
        switch a {
        case .identity: return x
        case .relu: return max(x, 0)
        case .swish: return x / (1 + exp(-x))
        case .hswish: return x * min(max(x + 3, 0), 6) / 6
        case .hsigmoid: return min(max(x + 3, 0), 6) / 6
        }
    }

    static func actDerivative(_ a: Activation, _ x: Double) -> Double {
        switch a {
        case .identity: return 1
        case .relu: return x > 0 ? 1 : 0
        case .swish: let s = 1 / (1 + exp(-x)); return s * (1 + x * (1 - s))
        case .hswish: return x <= -3 ? 0 : (x >= 3 ? 1 : (2 * x + 3) / 6)
        case .hsigmoid: return (x > -3 && x < 3) ? 1.0 / 6 : 0
        }
    }

    static func globalAvg(_ x: [Double], _ s: Shape4) -> [Double] {
        var y = [Double](repeating: 0, count: s.n * s.c)
        let hw = s.h * s.w
        for n in 0..<s.n { for p in 0..<hw { for ch in 0..<s.c { y[n * s.c + ch] += x[(n * hw + p) * s.c + ch] / Double(hw) } } }
        return y
    }

    /// `y[n, o] = Σ_i x[n, i] · w[o * inMax + i] + b[o]`.
    static func linear(_ x: [Double], n: Int, cin: Int, _ w: [Double], inMax: Int, cout: Int, _ b: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: n * cout)
        for r in 0..<n { for o in 0..<cout {
            var acc = b?[o] ?? 0
            for i in 0..<cin { acc += x[r * cin + i] * w[o * inMax + i] }
            y[r * cout + o] = acc
        } }
        return y
    }

    static func se(_ x: [Double], _ s: Shape4, mid: Int, cMax: Int, midMax: Int,
                   wr: [Double], br: [Double], we: [Double], be: [Double]) -> [Double] {
        let pooled = globalAvg(x, s)
        let r = linear(pooled, n: s.n, cin: s.c, wr, inMax: cMax, cout: mid, br).map { max($0, 0) }
        let z = linear(r, n: s.n, cin: mid, we, inMax: midMax, cout: s.c, be)
        let hw = s.h * s.w
        var y = x
        for n in 0..<s.n { for p in 0..<hw { for ch in 0..<s.c {
            y[(n * hw + p) * s.c + ch] *= act(.hsigmoid, z[n * s.c + ch])
        } } }
        return y
    }

    /// `F.avg_pool2d(x, 2, padding=p)` with count_include_pad.
    static func avgPool2(_ x: [Double], _ s: Shape4, pad p: Int) -> [Double] {
        let ho = (s.h + 2 * p - 2) / 2 + 1, wo = (s.w + 2 * p - 2) / 2 + 1
        var y = [Double](repeating: 0, count: s.n * ho * wo * s.c)
        for n in 0..<s.n { for oh in 0..<ho { for ow in 0..<wo { for ch in 0..<s.c {
            var acc = 0.0
            for dh in 0..<2 { for dw in 0..<2 {
                let ih = 2 * oh - p + dh, iw = 2 * ow - p + dw
                if ih >= 0 && ih < s.h && iw >= 0 && iw < s.w { acc += x[((n * s.h + ih) * s.w + iw) * s.c + ch] }
            } }
            y[((n * ho + oh) * wo + ow) * s.c + ch] = acc / 4
        } } } }
        return y
    }

    /// PyTorch bicubic (align_corners=False, A=-0.75), evaluated directly in 2-D.
    static func bicubic(_ x: [Double], _ s: Shape4, oh: Int, ow: Int) -> [Double] {
        let A = -0.75
        func c1(_ t: Double) -> Double { ((A + 2) * t - (A + 3)) * t * t + 1 }
        func c2(_ t: Double) -> Double { ((A * t - 5 * A) * t + 8 * A) * t - 4 * A }
        func weights(_ t: Double) -> [Double] { [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)] }
        var y = [Double](repeating: 0, count: s.n * oh * ow * s.c)
        let sy = Double(s.h) / Double(oh), sx = Double(s.w) / Double(ow)
        for n in 0..<s.n { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<s.c {
            let fy = (Double(oy) + 0.5) * sy - 0.5, fx = (Double(ox) + 0.5) * sx - 0.5
            let iy = Int(fy.rounded(.down)), ix = Int(fx.rounded(.down))
            let wy = weights(fy - Double(iy)), wx = weights(fx - Double(ix))
            var acc = 0.0
            for a in 0..<4 { for b in 0..<4 {
                let yy = min(max(iy - 1 + a, 0), s.h - 1), xx = min(max(ix - 1 + b, 0), s.w - 1)
                acc += wy[a] * wx[b] * x[((n * s.h + yy) * s.w + xx) * s.c + ch]
            } }
            y[((n * oh + oy) * ow + ox) * s.c + ch] = acc
        } } } }
        return y
    }
}
