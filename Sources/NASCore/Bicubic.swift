/// Bicubic resize of NHWC images, exactly the sampling of PyTorch
/// `F.interpolate(mode="bicubic", align_corners=False)` without antialiasing:
///
///   `scale = in / out`, `src = (dst + 0.5) · scale - 0.5` (not clamped),
///   `i = floor(src)`, `t = src - i`, taps `i-1 … i+2` clamped to `[0, in-1]`
///   (border replicate), weights with `A = -0.75`:
///   `w0 = c2(t+1), w1 = c1(t), w2 = c1(1-t), w3 = c2(2-t)`,
///   `c1(x) = ((A+2)x - (A+3))x² + 1`, `c2(x) = ((Ax - 5A)x + 8A)x - 4A`.
///   `y[oy,ox] = Σ_{a,b} wy[a] · wx[b] · x[iy+a-1, ix+b-1]`.
///
/// Computed in Float like PyTorch (opmath = float); the summation order differs, so
/// results agree to ~1e-6 relative, not bit for bit. Forward only.
public enum Bicubic {
    static let a: Float = -0.75

    /// Tap indices (clamped) and weights of every output coordinate along one axis.
    static func taps(inSize: Int, outSize: Int, idx: UnsafeMutablePointer<Int32>, wts: UnsafeMutablePointer<Float>) {
        let scale = Float(inSize) / Float(outSize)
        for d in 0..<outSize {
            let src = (Float(d) + 0.5) * scale - 0.5
            let i0 = src.rounded(.down)
            let t = src - i0
            let i = Int(i0)
            let x1 = t, x2 = 1 - t
            let c1 = { (x: Float) -> Float in ((a + 2) * x - (a + 3)) * x * x + 1 }
            let c2 = { (x: Float) -> Float in ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            wts[4 * d] = c2(x1 + 1)
            wts[4 * d + 1] = c1(x1)
            wts[4 * d + 2] = c1(x2)
            wts[4 * d + 3] = c2(x2 + 1)
            for j in 0..<4 { idx[4 * d + j] = Int32(min(max(i - 1 + j, 0), inSize - 1)) }
        }
    }

    public static func forward(_ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
                               outHeight: Int, outWidth: Int, y: UnsafeMutableBufferPointer<Float>) {
        precondition(outHeight >= 1 && outWidth >= 1 && xs.h >= 1 && xs.w >= 1, "Bicubic: empty size")
        let ys = Shape4(n: xs.n, h: outHeight, w: outWidth, c: xs.c)
        requireCount(x, xs.count, "x"); requireCount(y, ys.count, "y")
        let nTaps = 4 * (outHeight + outWidth)
        // Layout: weights (floats) | indices (Int32, same size in bytes).
        let f = ctx.workspace.floats(2 * nTaps)
        let wy = f, wx = f + 4 * outHeight
        let iRaw = UnsafeMutableRawPointer(f + nTaps)
        // Int32 and Float have the same size and alignment; this region is only ever
        // accessed as Int32 within this call.
        let iy = iRaw.bindMemory(to: Int32.self, capacity: nTaps), ix = iy + 4 * outHeight
        taps(inSize: xs.h, outSize: outHeight, idx: iy, wts: wy)
        taps(inSize: xs.w, outSize: outWidth, idx: ix, wts: wx)
        let xp = x.base, yp = y.base, c = xs.c
        ctx.parallelChunks(ys.n * ys.h, minChunk: max(1, 4096 / max(1, outWidth * c))) { _, rows in
            for row in rows {
                let n = row / ys.h, oy = row % ys.h
                let base = xp + n * xs.sampleCount
                for ox in 0..<outWidth {
                    let out = yp + (row * outWidth + ox) * c
                    var ch = 0
                    while ch + 8 <= c {
                        var acc = SIMD8<Float>()
                        for a in 0..<4 {
                            let r = base + Int(iy[4 * oy + a]) * xs.w * c + ch
                            var h = SIMD8<Float>()
                            for b in 0..<4 { h = h.addingProduct(load8(r + Int(ix[4 * ox + b]) * c), wx[4 * ox + b]) }
                            acc = acc.addingProduct(h, wy[4 * oy + a])
                        }
                        store8(acc, out + ch)
                        ch += 8
                    }
                    while ch < c {
                        var acc: Float = 0
                        for a in 0..<4 {
                            let r = base + Int(iy[4 * oy + a]) * xs.w * c + ch
                            var h: Float = 0
                            for b in 0..<4 { h += r[Int(ix[4 * ox + b]) * c] * wx[4 * ox + b] }
                            acc += h * wy[4 * oy + a]
                        }
                        out[ch] = acc
                        ch += 1
                    }
                }
            }
        }
    }
}
