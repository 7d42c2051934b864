/// The convex combination of K weight copies (K-shot NAS) and its backward pass.
///
/// Forward: `out[i] = sum_k codes[k] * copy_k[i]`, accumulated in Double and rounded
/// once, so K equal copies mixed by uniform codes (1/K, exact for K a power of two) give
/// back the copy bit for bit. Backward, given `g = dL/dout`:
/// `dcopy_k[i] += codes[k] * g[i]` and `dcodes[k] = sum_i g[i] * copy_k[i]`.
///
/// Copies are addressed as `base + copyOffsets[k]` of one flat buffer (the supernet's
/// parameter layout), so a mix reads K strided regions and writes one.
public enum WeightMixing {
    /// Mixes `count` floats: `out[i] = sum_k codes[k] * base[copyOffsets[k] + i]`.
    public static func mix(
        _ base: UnsafePointer<Float>, copyOffsets: [Int], codes: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        let k = copyOffsets.count
        precondition(k >= 1)
        var i = 0
        // Four lanes in Double per iteration; the copies' loop innermost keeps one
        // accumulator per lane in registers.
        while i + 4 <= count {
            var acc = SIMD4<Double>(repeating: 0)
            for j in 0..<k {
                let x = UnsafeRawPointer(base + copyOffsets[j] + i).loadUnaligned(as: SIMD4<Float>.self)
                acc.addProduct(SIMD4<Double>(repeating: Double(codes[j])), SIMD4<Double>(x))
            }
            UnsafeMutableRawPointer(out + i).storeBytes(of: SIMD4<Float>(acc), as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            var acc = 0.0
            for j in 0..<k { acc += Double(codes[j]) * Double(base[copyOffsets[j] + i]) }
            out[i] = Float(acc)
            i += 1
        }
    }

    /// The backward pass of `mix` over `count` floats: adds `codes[k] * g` into the
    /// copies' gradients (`gradBase + copyOffsets[k]`) and, when `codeGradient` is given,
    /// adds `<g, copy_k>` into `codeGradient[k]` (per copy, float partial sums in eight
    /// lanes flushed into Double every 1024 elements, the same order whatever the
    /// grouping). Copies go four per pass over `g`, the rest one per pass.
    public static func distribute(
        _ g: UnsafePointer<Float>, base: UnsafePointer<Float>, gradBase: UnsafeMutablePointer<Float>,
        copyOffsets: [Int], codes: UnsafePointer<Float>, count: Int, codeGradient: UnsafeMutablePointer<Double>?
    ) {
        var j = 0
        while j + 4 <= copyOffsets.count {
            let o = (copyOffsets[j], copyOffsets[j + 1], copyOffsets[j + 2], copyOffsets[j + 3])
            let dots = distributeFour(g, w: (base + o.0, base + o.1, base + o.2, base + o.3),
                                      dw: (gradBase + o.0, gradBase + o.1, gradBase + o.2, gradBase + o.3),
                                      c: SIMD4(codes[j], codes[j + 1], codes[j + 2], codes[j + 3]), count: count, dot: codeGradient != nil)
            if let codeGradient { for l in 0..<4 { codeGradient[j + l] += dots[l] } }
            j += 4
        }
        while j < copyOffsets.count {
            let dot = distributeOne(g, w: base + copyOffsets[j], dw: gradBase + copyOffsets[j], c: codes[j], count: count, dot: codeGradient != nil)
            codeGradient?[j] += dot
            j += 1
        }
    }

    /// One copy: `dw += c g`, returns `<g, w>` (0 unless `dot`).
    @inline(__always)
    private static func distributeOne(_ g: UnsafePointer<Float>, w: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>,
                                      c: Float, count: Int, dot: Bool) -> Double {
        var acc = SIMD8<Float>(repeating: 0)
        var total = 0.0
        var i = 0
        while i + 8 <= count {
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            var d = UnsafeRawPointer(dw + i).loadUnaligned(as: SIMD8<Float>.self)
            d.addProduct(SIMD8<Float>(repeating: c), gv)
            UnsafeMutableRawPointer(dw + i).storeBytes(of: d, as: SIMD8<Float>.self)
            if dot { acc.addProduct(gv, UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float>.self)) }
            i += 8
            if i & 1023 == 0 {
                total += Double(acc.sum())
                acc = SIMD8<Float>(repeating: 0)
            }
        }
        total += Double(acc.sum())
        while i < count {
            dw[i] = dw[i].addingProduct(c, g[i])
            if dot { total += Double(g[i]) * Double(w[i]) }
            i += 1
        }
        return dot ? total : 0
    }

    /// Four copies in one pass over `g`; returns the four `<g, w_l>` (zeros unless `dot`).
    @inline(__always)
    private static func distributeFour(
        _ g: UnsafePointer<Float>,
        w: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
        dw: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
        c: SIMD4<Float>, count: Int, dot: Bool
    ) -> SIMD4<Double> {
        @inline(__always) func update(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ c: Float, _ gv: SIMD8<Float>) {
            var d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            d.addProduct(SIMD8<Float>(repeating: c), gv)
            UnsafeMutableRawPointer(p + i).storeBytes(of: d, as: SIMD8<Float>.self)
        }
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
            UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        }
        var a0 = SIMD8<Float>(repeating: 0), a1 = a0, a2 = a0, a3 = a0
        var total = SIMD4<Double>(repeating: 0)
        var i = 0
        while i + 8 <= count {
            let gv = load(g, i)
            update(dw.0, i, c[0], gv)
            update(dw.1, i, c[1], gv)
            update(dw.2, i, c[2], gv)
            update(dw.3, i, c[3], gv)
            if dot {
                a0.addProduct(gv, load(w.0, i))
                a1.addProduct(gv, load(w.1, i))
                a2.addProduct(gv, load(w.2, i))
                a3.addProduct(gv, load(w.3, i))
            }
            i += 8
            if i & 1023 == 0 {
                total += SIMD4(Double(a0.sum()), Double(a1.sum()), Double(a2.sum()), Double(a3.sum()))
                a0 = SIMD8<Float>(repeating: 0); a1 = a0; a2 = a0; a3 = a0
            }
        }
        total += SIMD4(Double(a0.sum()), Double(a1.sum()), Double(a2.sum()), Double(a3.sum()))
        @inline(__always) func tail(_ w: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>, _ c: Float, _ sum: inout Double) {
            for k in i..<count {
                dw[k] = dw[k].addingProduct(c, g[k])
                if dot { sum += Double(g[k]) * Double(w[k]) }
            }
        }
        tail(w.0, dw.0, c[0], &total[0])
        tail(w.1, dw.1, c[1], &total[1])
        tail(w.2, dw.2, c[2], &total[2])
        tail(w.3, dw.3, c[3], &total[3])
        return dot ? total : SIMD4(repeating: 0)
    }

    /// Reference versions (plain loops) for the tests.
    public static func mixNaive(_ copies: [[Float]], codes: [Float]) -> [Float] {
        (0..<(copies.first?.count ?? 0)).map { i in
            Float(zip(copies, codes).reduce(0.0) { $0 + Double($1.1) * Double($1.0[i]) })
        }
    }

    public static func distributeNaive(_ g: [Float], copies: [[Float]], codes: [Float]) -> (copyGradients: [[Float]], codeGradient: [Double]) {
        let dc = copies.map { c in zip(g, c).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let dw = codes.map { lam in g.map { lam * $0 } }
        return (dw, dc)
    }
}
