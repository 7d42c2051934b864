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
    /// copies' gradients (`gradBase + copyOffsets[k]`) and adds `<g, copy_k>` into
    /// `codeGradient[k]`.
    public static func distribute(
        _ g: UnsafePointer<Float>, base: UnsafePointer<Float>, gradBase: UnsafeMutablePointer<Float>,
        copyOffsets: [Int], codes: UnsafePointer<Float>, count: Int, codeGradient: UnsafeMutablePointer<Double>
    ) {
        for (j, offset) in copyOffsets.enumerated() {
            let c = codes[j]
            let w = base + offset, dw = gradBase + offset
            var dot = SIMD8<Float>(repeating: 0)
            var dotD = 0.0
            var i = 0
            while i + 8 <= count {
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                let wv = UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float>.self)
                var d = UnsafeRawPointer(dw + i).loadUnaligned(as: SIMD8<Float>.self)
                d.addProduct(SIMD8<Float>(repeating: c), gv)
                UnsafeMutableRawPointer(dw + i).storeBytes(of: d, as: SIMD8<Float>.self)
                dot.addProduct(gv, wv)
                i += 8
                // Flush the float partial sums into Double every 1024 elements.
                if i & 1023 == 0 {
                    dotD += Double(dot.sum())
                    dot = SIMD8<Float>(repeating: 0)
                }
            }
            dotD += Double(dot.sum())
            while i < count {
                dw[i] = dw[i].addingProduct(c, g[i])
                dotD += Double(g[i]) * Double(w[i])
                i += 1
            }
            codeGradient[j] += dotD
        }
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
