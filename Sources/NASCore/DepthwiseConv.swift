import CVectorKernels

/// Depthwise k x k convolution (k = 3, 5, 7, any odd k works), stride 1 or 2, 'same'
/// padding `p = k / 2`, no bias; weight `[cMax, 1, kMax, kMax]` OIHW, of which the
/// first `c` channels and the centre `k x k` window are used.
///
/// Shapes: x `[n, h, w, c]`, y `[n, ho, wo, c]`, `ho = floor((h + 2p - k) / s) + 1`.
///
///   `y[n,oh,ow,c] = Σ_{kh,kw} x[n, oh*s-p+kh, ow*s-p+kw, c] · W[c,0,kh,kw]`
///
/// Implementation: the slice is repacked to `Wp[k*k, c]` (channels contiguous), and
/// each output pixel accumulates its taps over 8 contiguous channels at a time in
/// `SIMD8<Float>` registers, four output pixels per step so each weight vector load
/// is reused (with `VectorISA.avx512`, 16 channels in a 512-bit C loop). Forward copies
/// each sample into a zero-bordered buffer and splits samples over workers (rows, when
/// there are fewer samples than workers: `forwardPadded`); a channel count not a multiple
/// of 8 or a kernel wider than the map split output rows of the unbordered input instead,
/// with bounds-checked edge columns. Backward splits samples, with per-worker weight-gradient partials summed at
/// the end: over bordered copies for the shapes forward borders (`backwardPadded` at stride 1,
/// `backwardPaddedStride2` with dx gathered), a scatter loop for the others.
/// Backward: `dx[ih,iw,c] = Σ dy[oh,ow,c] · Wp[t,c]` (overwritten),
/// `dW[c,0,kh,kw] += Σ_{n,oh,ow} x[..] · dy[n,oh,ow,c]` (into the full buffer).
public enum DepthwiseConv {
    public static func outputShape(_ x: Shape4, kernel k: Int, stride: Int) -> Shape4 {
        ConvGeometry.sameOutput(x, kernel: k, stride: stride, cout: x.c)
    }

    private static func check(_ xs: Shape4, _ sl: ConvWeightSlice, _ stride: Int) {
        precondition(sl.inMax == 1 && sl.cin == 1 && sl.cout == xs.c && sl.k % 2 == 1 && (stride == 1 || stride == 2),
                     "DepthwiseConv: shape \(xs) does not match slice \(sl) / stride \(stride)")
    }

    /// The depthwise weight slice for `c` of `cMax` channels and kernel `k` of `kMax`.
    public static func slice(cMax: Int, kMax: Int, c: Int, k: Int) -> ConvWeightSlice {
        ConvWeightSlice(outMax: cMax, inMax: 1, kMax: kMax, cout: c, cin: 1, k: k)
    }

    private static func pack(_ w: UnsafePointer<Float>, _ sl: ConvWeightSlice, _ wp: UnsafeMutablePointer<Float>) {
        let c = sl.cout, k = sl.k
        for ch in 0..<c {
            for kh in 0..<k {
                for kw in 0..<k { wp[(kh * k + kw) * c + ch] = w[sl.index(ch, 0, kh, kw)] }
            }
        }
    }

    /// `y = depthwise(x, W slice)`, then `epilogue` (if given) on each output row while
    /// it is in cache.
    public static func forward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice, stride: Int,
        epilogue: ChannelAffine? = nil,
        y: UnsafeMutableBufferPointer<Float>
    ) {
        check(xs, slice, stride)
        let ys = outputShape(xs, kernel: slice.k, stride: stride)
        requireCount(x, xs.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(y, ys.count, "y")
        let k = slice.k, c = xs.c
        if let epilogue { precondition(epilogue.channels == c, "DepthwiseConv: epilogue of \(epilogue.channels) channels, output has \(c)") }
        if c % 8 == 0 && k <= xs.w {
            forwardPadded(ctx, x.base, xs, weight.base, slice, stride: stride, ys, y.base, epilogue: epilogue)
            return
        }
        let wp = ctx.workspace.floats(k * k * c)
        pack(weight.base, slice, wp)
        let xp = x.base, yp = y.base
        let rows = ys.n * ys.h
        // Rows are independent; chunks need enough work to amortise the dispatch.
        ctx.parallelChunks(rows, minChunk: max(1, 4096 / max(1, ys.w * c))) { _, range in
            for row in range {
                forwardRow(xp, xs, wp, k: k, stride: stride, n: row / ys.h, oh: row % ys.h, ys, yp + row * ys.w * c)
                epilogue?.apply(yp + row * ys.w * c, rows: ys.w, isa: ctx.vectorISA)
            }
        }
    }

    /// One output row. Channel blocks of 8 in the outer loop, so the block's k*k weight
    /// vectors stay in L1 while the row's pixels stream past.
    @inline(__always)
    private static func forwardRow(_ x: UnsafePointer<Float>, _ xs: Shape4, _ wp: UnsafePointer<Float>,
                                   k: Int, stride: Int, n: Int, oh: Int, _ ys: Shape4,
                                   _ yrow: UnsafeMutablePointer<Float>) {
        let c = xs.c, pad = k / 2
        let kh0 = max(0, pad - oh * stride), kh1 = min(k, xs.h + pad - oh * stride)
        let xs0 = x + n * xs.h * xs.w * c
        // Output columns whose whole window lies inside the row: ow*s-p >= 0 and ow*s-p+k-1 < w.
        let owLo = min(ys.w, (pad + stride - 1) / stride)
        let lastStart = xs.w - k + pad  // floor division below needs it non-negative
        let owHi = lastStart < 0 ? owLo : max(owLo, min(ys.w, lastStart / stride + 1))
        var cb = 0
        while cb < c {
            let lanes = min(8, c - cb)
            if lanes == 8 {
                // Edge columns: bounds-checked taps.
                for ow in 0..<owLo { edge8(xs0, xs, wp, k, stride, kh0, kh1, oh, ow, cb, yrow) }
                for ow in owHi..<ys.w { edge8(xs0, xs, wp, k, stride, kh0, kh1, oh, ow, cb, yrow) }
                // Interior columns: no bounds checks (rows outside kh0..<kh1 are never read).
                let rowStride = xs.w * c
                let top = xs0 + (oh * stride - pad) * rowStride - pad * c + cb
                interior(top, rowStride: rowStride, wp + cb, k: k, kh: kh0..<kh1, stride: stride, c: c,
                         columns: owLo..<owHi, yrow + cb)
            } else {
                for ow in 0..<ys.w {
                    let iw0 = ow * stride - pad
                    for ch in cb..<(cb + lanes) {
                        var a: Float = 0
                        for kh in kh0..<kh1 {
                            let ih = oh * stride - pad + kh
                            for kw in max(0, -iw0)..<min(k, xs.w - iw0) {
                                a += xs0[(ih * xs.w + iw0 + kw) * c + ch] * wp[(kh * k + kw) * c + ch]
                            }
                        }
                        yrow[ow * c + ch] = a
                    }
                }
            }
            cb += 8
        }
    }

    /// Whether the bordered paths copy a sample's rows into its bordered buffer one by one,
    /// just before the first output row that reads them, rather than all at once: where the
    /// bordered sample and the output it produces (floats) exceed 1 MiB, the L2 of one core
    /// on the Zen 4 and Zen 5 VMs of BENCHMARKS.md, so that the rows in use stay in cache.
    /// Measured on the Zen 4 VM (old and new binaries alternating, best runs):
    /// [32,32,32,144] k3 s1 forward 38-48 -> 46-50 GFLOP/s, backward 26-35 -> 36-41,
    /// [64,64,64,144] k5 s2 backward 32-37 -> 40-48. Samples that fit have nothing to gain
    /// and keep the whole copy (row by row measured slower on them in one pair of runs,
    /// [32,16,16,144] k3 s1 backward 69-79 -> 37-39, within this VM's run-to-run spread).
    static func streamsRows(bordered: Int, output: Int) -> Bool {
        (bordered + output) * MemoryLayout<Float>.size > 1 << 20
    }

    /// The usual path (`c % 8 == 0`, the kernel no wider than the map): each sample is
    /// copied into a zero-bordered buffer (per worker, its border zeroed once), so every
    /// output pixel takes the unchecked path, four pixels per step, and the epilogue runs on
    /// each output row while it is in L1. The bounds-checked edge columns of the row path
    /// cost more than the copy on every map size (BENCHMARKS.md "Kernels": [32,32,32,144] k3
    /// 37 -> 87-90 GFLOP/s); a kernel wider than the map would multiply mostly zeros (2x2
    /// k5: 4 of 25 taps are real), so those keep the row path. With fewer samples than
    /// workers the rows of each sample are split instead.
    /// Rows of the buffer are 16 floats longer than the padded row, so that rows a
    /// multiple of 4 KiB apart (8x8x768 k5: 12 x 768 floats) do not share L1 sets
    /// ([64,8,8,768] k5 80 -> 120 GFLOP/s). Samples are split over workers. With
    /// `VectorISA.avx512` each row runs the 512-bit C loop (`vk_depthwise_row_avx512`),
    /// which sums each output's taps in the same order.
    private static func forwardPadded(_ ctx: ComputeContext, _ xp: UnsafePointer<Float>, _ xs: Shape4,
                                      _ weight: UnsafePointer<Float>, _ slice: ConvWeightSlice, stride: Int,
                                      _ ys: Shape4, _ yp: UnsafeMutablePointer<Float>, epilogue: ChannelAffine?) {
        let k = slice.k, c = xs.c, pad = k / 2
        let pw = xs.w + 2 * pad, ph = xs.h + 2 * pad
        let rs = pw * c + 16
        let per = (ph * rs + 15) / 16 * 16
        let kkc = (k * k * c + 15) / 16 * 16
        let workers = ctx.workers, wide = ctx.vectorISA == .avx512
        let wp = ctx.workspace.floats(kkc + workers * per)
        pack(weight, slice, wp)
        let pads = wp + kkc
        // One output row of the bordered sample in `buf`, then the epilogue while it is in L1.
        func row(_ buf: UnsafePointer<Float>, _ oh: Int, _ dst: UnsafeMutablePointer<Float>) {
            let yrow = dst + oh * ys.w * c
            let top = buf + oh * stride * rs
            if wide {
                vk_depthwise_row_avx512(top, rs, wp, Int32(k), Int32(stride), Int32(c), Int32(ys.w), yrow)
            } else {
                var cb = 0
                while cb < c {
                    interior(top + cb, rowStride: rs, wp + cb, k: k, kh: 0..<k, stride: stride, c: c,
                             columns: 0..<ys.w, yrow + cb)
                    cb += 8
                }
            }
            epilogue?.apply(yrow, rows: ys.w, isa: ctx.vectorISA)
        }
        func copy(sample n: Int, into buf: UnsafeMutablePointer<Float>) {
            let src = xp + n * xs.sampleCount
            for h in 0..<xs.h { (buf + (h + pad) * rs + pad * c).update(from: src + h * xs.w * c, count: xs.w * c) }
        }
        if ys.n < workers {
            // Fewer samples than workers (batch 1: latency): one bordered copy per sample,
            // its output rows split over the workers.
            pads.update(repeating: 0, count: ph * rs)
            for n in 0..<ys.n {
                copy(sample: n, into: pads)
                let dst = yp + n * ys.sampleCount
                ctx.parallelChunks(ys.h) { _, rows in
                    for oh in rows { row(pads, oh, dst) }
                }
            }
            return
        }
        let stream = streamsRows(bordered: ph * rs, output: ys.sampleCount)
        ctx.parallelChunks(ys.n) { wi, samples in
            let buf = pads + wi * per
            buf.update(repeating: 0, count: ph * rs)
            for n in samples {
                let src = xp + n * xs.sampleCount
                let dst = yp + n * ys.sampleCount
                var copied = 0
                for oh in 0..<ys.h {
                    while copied < (stream ? min(xs.h, oh * stride + k - pad) : xs.h) {
                        (buf + (copied + pad) * rs + pad * c).update(from: src + copied * xs.w * c, count: xs.w * c)
                        copied += 1
                    }
                    row(buf, oh, dst)
                }
            }
        }
    }

    /// Output columns `columns` of one row, one 8-channel block, taps `kh` x all kw, no
    /// bounds checks: four pixels per step (each weight vector load serves four), then
    /// single pixels. `top` is where tap (0, 0) of output column 0 reads; `w` and `y`
    /// point at the block's first channel.
    @inline(__always)
    private static func interior(_ top: UnsafePointer<Float>, rowStride: Int, _ w: UnsafePointer<Float>, k: Int,
                                 kh khs: Range<Int>, stride: Int, c: Int, columns: Range<Int>,
                                 _ y: UnsafeMutablePointer<Float>) {
        let sc = stride * c
        var ow = columns.lowerBound
        while ow + 4 <= columns.upperBound {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for kh in khs {
                let xrow = top + kh * rowStride + ow * sc
                let wrow = w + kh * k * c
                for kw in 0..<k {
                    let wv = load8(wrow + kw * c)
                    let q = xrow + kw * c
                    a0 = a0.addingProduct(load8(q), wv)
                    a1 = a1.addingProduct(load8(q + sc), wv)
                    a2 = a2.addingProduct(load8(q + 2 * sc), wv)
                    a3 = a3.addingProduct(load8(q + 3 * sc), wv)
                }
            }
            let o = y + ow * c
            store8(a0, o); store8(a1, o + c); store8(a2, o + 2 * c); store8(a3, o + 3 * c)
            ow += 4
        }
        while ow < columns.upperBound {
            var a = SIMD8<Float>()
            for kh in khs {
                let xrow = top + kh * rowStride + ow * sc
                let wrow = w + kh * k * c
                for kw in 0..<k { a = a.addingProduct(load8(xrow + kw * c), load8(wrow + kw * c)) }
            }
            store8(a, y + ow * c)
            ow += 1
        }
    }

    @inline(__always)
    private static func edge8(_ xs0: UnsafePointer<Float>, _ xs: Shape4, _ wp: UnsafePointer<Float>,
                              _ k: Int, _ stride: Int, _ kh0: Int, _ kh1: Int, _ oh: Int, _ ow: Int, _ cb: Int,
                              _ yrow: UnsafeMutablePointer<Float>) {
        let c = xs.c, pad = k / 2
        let iw0 = ow * stride - pad
        var a = SIMD8<Float>()
        for kh in kh0..<kh1 {
            let ih = oh * stride - pad + kh
            for kw in max(0, -iw0)..<min(k, xs.w - iw0) {
                a = a.addingProduct(load8(xs0 + (ih * xs.w + iw0 + kw) * c + cb), load8(wp + (kh * k + kw) * c + cb))
            }
        }
        store8(a, yrow + ow * c + cb)
    }

    /// One sample's share of the weight gradient on the bordered paths: `x`'s rows copied
    /// into the worker's bordered buffer `xbuf` (border `pad`; row by row just before use when
    /// `streaming`, else all at once), then `vk_depthwise_weight_grad_row_*` per output row.
    private static func weightGradientRows(_ x: UnsafePointer<Float>, _ xs: Shape4,
                                           into xbuf: UnsafeMutablePointer<Float>, rowStride rs: Int, pad: Int,
                                           k: Int, stride: Int, dy: UnsafePointer<Float>, _ ys: Shape4,
                                           streaming: Bool, wide: Bool, dw: UnsafeMutablePointer<Float>) {
        let c = xs.c
        var copied = 0
        for oh in 0..<ys.h {
            while copied < (streaming ? min(xs.h, stride * oh + k - pad) : xs.h) {
                (xbuf + (copied + pad) * rs + pad * c).update(from: x + copied * xs.w * c, count: xs.w * c)
                copied += 1
            }
            let top = xbuf + stride * oh * rs, g = dy + oh * ys.w * c
            if wide {
                vk_depthwise_weight_grad_row_avx512(top, rs, g, Int32(k), Int32(stride), Int32(c), Int32(ys.w), dw)
            } else {
                vk_depthwise_weight_grad_row_avx2(top, rs, g, Int32(k), Int32(stride), Int32(c), Int32(ys.w), dw)
            }
        }
    }

    /// The backward pass at stride 1 of the usual shapes (those of `forwardPadded`, and
    /// k <= 7), samples split over workers, as two convolutions over zero-bordered copies:
    /// - `dx` is the forward convolution of `dy` with the kernel flipped (`dx[ih, iw] =
    ///   Σ dy[ih + p - kh, iw + p - kw] · W[kh, kw]`): `dy` is copied into a bordered
    ///   buffer and `forwardPadded`'s rows run over it.
    /// - `dW[kh, kw]` sums `x` at each tap times `dy` over the output rows of the bordered
    ///   `x`, k accumulators per channel block and kernel row
    ///   (`vk_depthwise_weight_grad_row_*`), into per-worker partials summed at the end.
    /// Against the scatter loop of `backward` (a load and a store of `dx` and of the
    /// weight gradient per tap and channel block) this reads each operand once per tap:
    /// 1.4-2.7x on the stride-1 shapes of `Scripts/bench kernels`. Stride 2 has its own
    /// path (`backwardPaddedStride2`, dx gathered): spreading dy onto every other row and
    /// column to run this one multiplied three zeros per real tap ([32,16,16,144] k3 65 ->
    /// 43 GFLOP/s).
    private static func backwardPadded(_ ctx: ComputeContext, _ xp: UnsafePointer<Float>, _ xs: Shape4,
                                       _ weight: UnsafePointer<Float>, _ slice: ConvWeightSlice,
                                       _ dyp: UnsafePointer<Float>, dx dxp: UnsafeMutablePointer<Float>?,
                                       dWeight: UnsafeMutablePointer<Float>?) {
        let ys = xs  // stride 1, 'same' padding
        let k = slice.k, c = xs.c, pad = k / 2, kkc = (k * k * c + 15) / 16 * 16
        let pw = xs.w + 2 * pad, ph = xs.h + 2 * pad
        let rs = pw * c + 16
        let per = (ph * rs + 15) / 16 * 16
        let workers = ctx.workers, wide = ctx.vectorISA == .avx512
        // Flipped packed weights, then per worker: the weight-gradient partial, the
        // bordered x, the bordered dy.
        let flipped = ctx.workspace.floats(kkc + workers * (kkc + 2 * per))
        for ch in 0..<c {
            for kh in 0..<k {
                for kw in 0..<k { flipped[((k - 1 - kh) * k + (k - 1 - kw)) * c + ch] = weight[slice.index(ch, 0, kh, kw)] }
            }
        }
        let scratch = flipped + kkc
        let stream = streamsRows(bordered: ph * rs, output: xs.sampleCount)
        let used = ctx.parallelChunks(xs.n) { wi, samples in
            let dwp = scratch + wi * (kkc + 2 * per)
            let xbuf = dwp + kkc, dbuf = xbuf + per
            if dWeight != nil {
                dwp.update(repeating: 0, count: kkc)
                xbuf.update(repeating: 0, count: ph * rs)
            }
            if dxp != nil { dbuf.update(repeating: 0, count: ph * rs) }
            for n in samples {
                let dy0 = dyp + n * ys.sampleCount
                if dWeight != nil {
                    weightGradientRows(xp + n * xs.sampleCount, xs, into: xbuf, rowStride: rs, pad: pad, k: k, stride: 1,
                                       dy: dy0, ys, streaming: stream, wide: wide, dw: dwp)
                }
                guard let dxp else { continue }
                let dx0 = dxp + n * xs.sampleCount
                var copied = 0
                for ih in 0..<xs.h {
                    while copied < (stream ? min(ys.h, ih + k - pad) : ys.h) {
                        (dbuf + (copied + pad) * rs + pad * c).update(from: dy0 + copied * ys.w * c, count: ys.w * c)
                        copied += 1
                    }
                    let top = dbuf + ih * rs, dxrow = dx0 + ih * xs.w * c
                    if wide {
                        vk_depthwise_row_avx512(top, rs, flipped, Int32(k), 1, Int32(c), Int32(xs.w), dxrow)
                    } else {
                        var cb = 0
                        while cb < c {
                            interior(top + cb, rowStride: rs, flipped + cb, k: k, kh: 0..<k, stride: 1, c: c,
                                     columns: 0..<xs.w, dxrow + cb)
                            cb += 8
                        }
                    }
                }
            }
        }
        guard let dw = dWeight else { return }
        for ch in 0..<c {
            for kh in 0..<k {
                for kw in 0..<k {
                    let t = (kh * k + kw) * c + ch
                    var s: Float = 0
                    for wi in 0..<used { s += scratch[wi * (kkc + 2 * per) + t] }
                    dw[slice.index(ch, 0, kh, kw)] += s
                }
            }
        }
    }

    /// The backward pass at stride 2 of the shapes `backwardPadded` takes (odd k), samples
    /// split over workers, each operand read once per tap:
    /// - `dx` gathered row by row from a copy of `dy` with a zero border of (p + 1) / 2
    ///   pixels (`vk_depthwise_dx_s2_row_*`): each input pixel sums only the taps that reach
    ///   an output, a quarter of the k x k on average. (Spreading dy onto every other row and
    ///   column and running the stride-1 path multiplied three zeros per real tap.)
    /// - `dW` as at stride 1, the weight-gradient rows stepping two input columns per output
    ///   over the bordered `x`.
    /// The scatter loop of `backward` loaded and stored `dx` and the weight gradient for
    /// every tap and channel block: 23-30 GFLOP/s on the stride-2 shapes of `Scripts/bench
    /// kernels` on a Zen 4 VM (BENCHMARKS.md "Kernels").
    private static func backwardPaddedStride2(_ ctx: ComputeContext, _ xp: UnsafePointer<Float>, _ xs: Shape4,
                                              _ weight: UnsafePointer<Float>, _ slice: ConvWeightSlice,
                                              _ dyp: UnsafePointer<Float>, dx dxp: UnsafeMutablePointer<Float>?,
                                              dWeight: UnsafeMutablePointer<Float>?) {
        let k = slice.k, c = xs.c, pad = k / 2, kkc = (k * k * c + 15) / 16 * 16
        let ys = outputShape(xs, kernel: k, stride: 2)
        // Bordered x (pad on every side) for the weight gradient.
        let pw = xs.w + 2 * pad, ph = xs.h + 2 * pad
        let rs = pw * c + 16
        let perX = (ph * rs + 15) / 16 * 16
        // Bordered dy (border b on every side) for dx.
        let b = (pad + 1) / 2
        let rsd = (ys.w + 2 * b) * c + 16
        let perDy = ((ys.h + 2 * b) * rsd + 15) / 16 * 16
        let workers = ctx.workers, wide = ctx.vectorISA == .avx512
        let per = kkc + perX + perDy
        let packed = ctx.workspace.floats(kkc + workers * per)
        pack(weight, slice, packed)
        let scratch = packed + kkc
        let stream = streamsRows(bordered: ph * rs, output: xs.sampleCount)
        let used = ctx.parallelChunks(xs.n) { wi, samples in
            let dwp = scratch + wi * per
            let xbuf = dwp + kkc, dbuf = xbuf + perX
            if dWeight != nil {
                dwp.update(repeating: 0, count: kkc)
                xbuf.update(repeating: 0, count: ph * rs)
            }
            if dxp != nil { dbuf.update(repeating: 0, count: (ys.h + 2 * b) * rsd) }
            for n in samples {
                let dy0 = dyp + n * ys.sampleCount
                if dWeight != nil {
                    weightGradientRows(xp + n * xs.sampleCount, xs, into: xbuf, rowStride: rs, pad: pad, k: k, stride: 2,
                                       dy: dy0, ys, streaming: stream, wide: wide, dw: dwp)
                }
                guard let dxp else { continue }
                let first = dbuf + b * rsd + b * c
                let dx0 = dxp + n * xs.sampleCount
                var copied = 0
                for ih in 0..<xs.h {
                    // Row ih reads dy rows up to (ih + pad) / 2.
                    while copied < (stream ? min(ys.h, (ih + pad) / 2 + 1) : ys.h) {
                        (first + copied * rsd).update(from: dy0 + copied * ys.w * c, count: ys.w * c)
                        copied += 1
                    }
                    let dxrow = dx0 + ih * xs.w * c
                    if wide {
                        vk_depthwise_dx_s2_row_avx512(first, rsd, packed, Int32(k), Int32(ih), Int32(c), Int32(xs.w), dxrow)
                    } else {
                        vk_depthwise_dx_s2_row_avx2(first, rsd, packed, Int32(k), Int32(ih), Int32(c), Int32(xs.w), dxrow)
                    }
                }
            }
        }
        guard let dw = dWeight else { return }
        for ch in 0..<c {
            for kh in 0..<k {
                for kw in 0..<k {
                    let t = (kh * k + kw) * c + ch
                    var s: Float = 0
                    for wi in 0..<used { s += scratch[wi * per + t] }
                    dw[slice.index(ch, 0, kh, kw)] += s
                }
            }
        }
    }

    /// Backward pass: `dx` (if given) overwritten; `dWeight` (full `[cMax,1,kMax,kMax]`)
    /// accumulated.
    public static func backward(
        _ ctx: ComputeContext, x: UnsafeBufferPointer<Float>, shape xs: Shape4,
        weight: UnsafeBufferPointer<Float>, slice: ConvWeightSlice, stride: Int,
        dy: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?, dWeight: UnsafeMutableBufferPointer<Float>?
    ) {
        check(xs, slice, stride)
        let ys = outputShape(xs, kernel: slice.k, stride: stride)
        requireCount(x, xs.count, "x")
        requireCount(weight, slice.fullCount, "weight")
        requireCount(dy, ys.count, "dy")
        if let dx { requireCount(dx, xs.count, "dx") }
        if let dWeight { requireCount(dWeight, slice.fullCount, "dWeight") }
        let k = slice.k, c = xs.c, kkc = k * k * c, pad = k / 2
        if c % 8 == 0 && k <= min(7, xs.w) && xs.n >= ctx.workers {
            if stride == 1 {
                backwardPadded(ctx, x.base, xs, weight.base, slice, dy.base, dx: dx?.base, dWeight: dWeight?.base)
                return
            }
            if stride == 2 && k % 2 == 1 {
                backwardPaddedStride2(ctx, x.base, xs, weight.base, slice, dy.base, dx: dx?.base, dWeight: dWeight?.base)
                return
            }
        }
        let workers = ctx.workers
        let ws = ctx.workspace.floats(kkc * (1 + workers))
        pack(weight.base, slice, ws)
        let xp = x.base, dyp = dy.base, dxp = dx?.base
        let wantW = dWeight != nil
        let used = ctx.parallelChunks(xs.n) { wi, samples in
            let dwp = ws + kkc * (1 + wi)
            if wantW { dwp.update(repeating: 0, count: kkc) }
            for n in samples {
                let x0 = xp + n * xs.sampleCount
                let dy0 = dyp + n * ys.sampleCount
                let dx0 = dxp.map { $0 + n * xs.sampleCount }
                dx0?.update(repeating: 0, count: xs.sampleCount)
                for oh in 0..<ys.h {
                    let kh0 = max(0, pad - oh * stride), kh1 = min(k, xs.h + pad - oh * stride)
                    for ow in 0..<ys.w {
                        let iw0 = ow * stride - pad
                        let kw0 = max(0, -iw0), kw1 = min(k, xs.w - iw0)
                        let g = dy0 + (oh * ys.w + ow) * c
                        for kh in kh0..<kh1 {
                            let ih = oh * stride - pad + kh
                            for kw in kw0..<kw1 {
                                let xoff = (ih * xs.w + iw0 + kw) * c
                                let t = (kh * k + kw) * c
                                var ch = 0
                                while ch + 8 <= c {
                                    let gv = load8(g + ch)
                                    if let dx0 {
                                        store8(load8(dx0 + xoff + ch).addingProduct(gv, load8(ws + t + ch)), dx0 + xoff + ch)
                                    }
                                    if wantW {
                                        store8(load8(dwp + t + ch).addingProduct(gv, load8(x0 + xoff + ch)), dwp + t + ch)
                                    }
                                    ch += 8
                                }
                                while ch < c {
                                    if let dx0 { dx0[xoff + ch] += g[ch] * ws[t + ch] }
                                    if wantW { dwp[t + ch] += g[ch] * x0[xoff + ch] }
                                    ch += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        guard let dWeight else { return }
        let dw = dWeight.base
        for ch in 0..<c {
            for kh in 0..<k {
                for kw in 0..<k {
                    let t = (kh * k + kw) * c + ch
                    var s: Float = 0
                    for wi in 0..<used { s += ws[kkc * (1 + wi) + t] }
                    dw[slice.index(ch, 0, kh, kw)] += s
                }
            }
        }
    }
}
