/// Global average pooling and the official shortcut's 2x2 average pooling.
public enum GlobalAvgPool {
    /// `y[n, c] = Σ_{h,w} x[n,h,w,c] / (h·w)`; x `[n,h,w,c]`, y `[n,c]`.
    public static func forward(_ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape: Shape4,
                               y: UnsafeMutableBufferPointer<Float>) {
        requireCount(x, shape.count, "x"); requireCount(y, shape.n * shape.c, "y")
        let xp = x.base, yp = y.base, c = shape.c, hw = shape.h * shape.w
        let inv = 1 / Float(hw)
        ctx.parallelChunks(shape.n, minChunk: max(1, 16384 / max(1, shape.sampleCount))) { _, samples in
            for n in samples {
                let yr = yp + n * c
                yr.update(repeating: 0, count: c)
                for p in 0..<hw { addRow(xp + (n * hw + p) * c, yr, c) }
                for ch in 0..<c { yr[ch] *= inv }
            }
        }
    }

    /// `dx[n,h,w,c] = dy[n,c] / (h·w)` (overwritten).
    public static func backward(_ ctx: ComputeContext, dy: UnsafeBufferPointer<Float>, shape: Shape4,
                                dx: UnsafeMutableBufferPointer<Float>) {
        requireCount(dy, shape.n * shape.c, "dy"); requireCount(dx, shape.count, "dx")
        let gp = dy.base, dp = dx.base, c = shape.c, hw = shape.h * shape.w
        let inv = 1 / Float(hw)
        ctx.parallelChunks(shape.n, minChunk: max(1, 16384 / max(1, shape.sampleCount))) { _, samples in
            for n in samples {
                for p in 0..<hw {
                    let d = dp + (n * hw + p) * c
                    for ch in 0..<c { d[ch] = gp[n * c + ch] * inv }
                }
            }
        }
    }
}

/// `acc[0..<c] += row[0..<c]`.
@inline(__always) func addRow(_ row: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>, _ c: Int) {
    var ch = 0
    while ch + 8 <= c { store8(load8(acc + ch) + load8(row + ch), acc + ch); ch += 8 }
    while ch < c { acc[ch] += row[ch]; ch += 1 }
}

/// The official shortcut's average pooling (`DynamicShortcutLayer` for stride 2):
/// `F.avg_pool2d(x, 2, padding = (w odd ? 1 : 0))`, kernel = stride = 2,
/// `count_include_pad=True`, so every window divides by 4;
/// output `floor((h + 2p - 2) / 2) + 1` (same for w), `p` taken from the width as in
/// the official code.
///   `y[n,oh,ow,c] = ¼ Σ_{dh,dw ∈ {0,1}} x[n, 2oh-p+dh, 2ow-p+dw, c]` (zero outside).
public enum ShortcutAvgPool {
    public static func padding(_ x: Shape4) -> Int { x.w % 2 }

    public static func outputShape(_ x: Shape4) -> Shape4 {
        let p = padding(x)
        return Shape4(n: x.n, h: ConvGeometry.outputSize(x.h, kernel: 2, stride: 2, pad: p),
                      w: ConvGeometry.outputSize(x.w, kernel: 2, stride: 2, pad: p), c: x.c)
    }

    public static func forward(_ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
                               y: UnsafeMutableBufferPointer<Float>) {
        let ys = outputShape(xs), p = padding(xs), c = xs.c
        requireCount(x, xs.count, "x"); requireCount(y, ys.count, "y")
        let xp = x.base, yp = y.base
        if p == 0 {
            // Even width: every window lies inside the input. One pass, each output
            // the same left-to-right sum of its four pixels as the general loop's.
            ctx.parallelChunks(ys.n * ys.h, minChunk: max(1, 8192 / max(1, ys.w * c))) { _, rows in
                for row in rows {
                    let n = row / ys.h, oh = row % ys.h
                    let top = xp + (n * xs.h + 2 * oh) * xs.w * c, bottom = top + xs.w * c
                    for ow in 0..<ys.w {
                        let a = top + 2 * ow * c, b = bottom + 2 * ow * c, out = yp + (row * ys.w + ow) * c
                        var ch = 0
                        while ch + 8 <= c {
                            store8((load8(a + ch) + load8(a + c + ch) + load8(b + ch) + load8(b + c + ch)) * 0.25, out + ch)
                            ch += 8
                        }
                        while ch < c { out[ch] = (a[ch] + a[c + ch] + b[ch] + b[c + ch]) * 0.25; ch += 1 }
                    }
                }
            }
            return
        }
        ctx.parallelChunks(ys.n * ys.h, minChunk: max(1, 8192 / max(1, ys.w * c))) { _, rows in
            for row in rows {
                let n = row / ys.h, oh = row % ys.h
                for ow in 0..<ys.w {
                    let out = yp + (row * ys.w + ow) * c
                    out.update(repeating: 0, count: c)
                    for dh in 0..<2 {
                        let ih = 2 * oh - p + dh
                        guard ih >= 0 && ih < xs.h else { continue }
                        for dw in 0..<2 {
                            let iw = 2 * ow - p + dw
                            guard iw >= 0 && iw < xs.w else { continue }
                            addRow(xp + ((n * xs.h + ih) * xs.w + iw) * c, out, c)
                        }
                    }
                    var ch = 0
                    while ch + 8 <= c { store8(load8(out + ch) * 0.25, out + ch); ch += 8 }
                    while ch < c { out[ch] *= 0.25; ch += 1 }
                }
            }
        }
    }

    /// `dx` overwritten: each input pixel receives ¼ of its window's `dy` (zero for
    /// pixels no window covers).
    public static func backward(_ ctx: ComputeContext, dy: UnsafeBufferPointer<Float>, shape xs: Shape4,
                                dx: UnsafeMutableBufferPointer<Float>) {
        let ys = outputShape(xs), p = padding(xs), c = xs.c
        requireCount(dy, ys.count, "dy"); requireCount(dx, xs.count, "dx")
        let gp = dy.base, dp = dx.base
        ctx.parallelChunks(xs.n * xs.h, minChunk: max(1, 8192 / max(1, xs.w * c))) { _, rows in
            for row in rows {
                let ih = row % xs.h, n = row / xs.h
                let oh = (ih + p) / 2
                for iw in 0..<xs.w {
                    let d = dp + (row * xs.w + iw) * c
                    let ow = (iw + p) / 2
                    if oh < ys.h && ow < ys.w {
                        let g = gp + ((n * ys.h + oh) * ys.w + ow) * c
                        var ch = 0
                        while ch + 8 <= c { store8(load8(g + ch) * 0.25, d + ch); ch += 8 }
                        while ch < c { d[ch] = g[ch] * 0.25; ch += 1 }
                    } else {
                        d.update(repeating: 0, count: c)
                    }
                }
            }
        }
    }
}
