/// A pixel component the resampler can read: `UInt8` (0...255) or `Float`.
public protocol PixelComponent: Sendable {
    var floatValue: Float { get }
    /// The 8 components from `p` (unaligned) as floats.
    static func floats8(_ p: UnsafePointer<Self>) -> SIMD8<Float>
}

extension UInt8: PixelComponent {
    @inline(__always) public var floatValue: Float { Float(self) }
    @inline(__always) public static func floats8(_ p: UnsafePointer<UInt8>) -> SIMD8<Float> {
        SIMD8<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt8>.self))
    }
}

extension Float: PixelComponent {
    @inline(__always) public var floatValue: Float { self }
    @inline(__always) public static func floats8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
}

/// A rectangle in source pixel coordinates (edges, not centres): pixel `i`
/// covers [i, i+1). Fractional boxes are allowed, as in Pillow's `resize(box=)`.
public struct PixelBox: Sendable, Equatable {
    public var x0: Double, y0: Double, x1: Double, y1: Double
    public init(x0: Double, y0: Double, x1: Double, y1: Double) {
        self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1
    }
}

/// Separable antialiased resampling with the bicubic kernel (a = -0.5),
/// the algorithm of Pillow's `Image.resize(size, BICUBIC, box)`:
///
///     scale  = (box1 - box0) / outSize,  filterscale = max(scale, 1)
///     centre = box0 + (i + 0.5) * scale
///     taps j in [trunc(centre - 2*filterscale + 0.5), trunc(centre + 2*filterscale + 0.5)) ∩ [0, inSize)
///     w_j    = cubic((j - centre + 0.5) / filterscale),  normalised to sum 1
///     cubic(x) = (a+2)|x|^3 - (a+3)|x|^2 + 1 for |x| < 1; a|x|^3 - 5a|x|^2 + 8a|x| - 4a for |x| < 2
///
/// When downscaling the kernel is stretched by the scale, which is the
/// antialiasing. The vertical pass runs first, into a float buffer (Pillow
/// runs horizontal first and rounds the intermediate to 8 bits; the sums are
/// the same up to that rounding, below 0.5 levels).
public enum Resampler {
    /// Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC).
    @inline(__always) static func cubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Filter taps of one axis: output i reads `count[i]` inputs from
    /// `start[i]` with weights `weights[i * stride ..< i * stride + count[i]]`.
    struct Taps {
        var start: [Int]
        var count: [Int]
        var weights: [Float]
        var stride: Int

        init(inSize: Int, from b0: Double, to b1: Double, outSize: Int, reversed: Bool = false) {
            let scale = (b1 - b0) / Double(outSize)
            let filterscale = max(scale, 1)
            let support = 2 * filterscale
            stride = Int(support.rounded(.up)) * 2 + 1
            start = [Int](repeating: 0, count: outSize)
            count = [Int](repeating: 0, count: outSize)
            weights = [Float](repeating: 0, count: outSize * stride)
            var k = [Double](repeating: 0, count: stride)
            for i in 0..<outSize {
                let centre = b0 + (Double(i) + 0.5) * scale
                let lo = max(Int(centre - support + 0.5), 0)
                let hi = min(Int(centre + support + 0.5), inSize)
                let n = min(max(hi - lo, 0), stride)
                var sum = 0.0
                for j in 0..<n {
                    k[j] = cubic((Double(j + lo) - centre + 0.5) / filterscale)
                    sum += k[j]
                }
                let o = reversed ? outSize - 1 - i : i
                start[o] = lo
                count[o] = n
                for j in 0..<n { weights[o * stride + j] = Float(sum != 0 ? k[j] / sum : 0) }
            }
        }
    }

    /// Resamples `box` of an HWC image with `channels` channels to
    /// `outWidth` x `outHeight`, optionally mirrored left-right, writing floats
    /// on the source's scale (not clamped) into `out` (outHeight*outWidth*channels).
    public static func resample<T: PixelComponent>(
        _ src: UnsafeBufferPointer<T>, width: Int, height: Int, channels: Int = 3,
        box: PixelBox, outWidth: Int, outHeight: Int, flip: Bool = false,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(src.count == width * height * channels && out.count == outWidth * outHeight * channels, "resample: buffer sizes do not match the shapes")
        precondition(outWidth > 0 && outHeight > 0 && box.x1 > box.x0 && box.y1 > box.y0, "resample: empty box or output")
        let h = Taps(inSize: width, from: box.x0, to: box.x1, outSize: outWidth, reversed: flip)
        let v = Taps(inSize: height, from: box.y0, to: box.y1, outSize: outHeight)
        // Columns the horizontal pass reads.
        var colLo = width, colHi = 0
        for i in 0..<outWidth where h.count[i] > 0 {
            colLo = min(colLo, h.start[i])
            colHi = max(colHi, h.start[i] + h.count[i])
        }
        guard colHi > colLo else {
            out.update(repeating: 0)
            return
        }
        let c = channels
        let span = (colHi - colLo) * c
        // Vertical first (contiguous rows, vectorisable), on the needed columns only:
        //   tmp[y][x'][ch] = sum_j v_j src[vstart_y + j][colLo + x'][ch]
        // then horizontal on outHeight rows. The same sums as Pillow's
        // horizontal-then-vertical order, as the filter is separable.
        // One float of padding: the horizontal pass reads pixels as 4 floats (RGB + 1).
        let tmp = UnsafeMutableBufferPointer<Float>.allocate(capacity: outHeight * span + 1)
        defer { tmp.deallocate() }
        tmp[outHeight * span] = 0
        let s0 = src.baseAddress.unsafelyUnwrapped
        v.weights.withUnsafeBufferPointer { vw in
            for y in 0..<outHeight {
                let o = tmp.baseAddress.unsafelyUnwrapped + y * span
                let n = v.count[y]
                guard n > 0 else { o.update(repeating: 0, count: span); continue }
                let wp = vw.baseAddress.unsafelyUnwrapped + y * v.stride
                let first = s0 + (v.start[y] * width + colLo) * c
                let rowStep = width * c
                // 8 outputs at a time summed over all taps in a register (one store each,
                // not one load and store per tap); per output the same products and sums
                // in the same order as the scalar tail, so the result does not depend on
                // the position.
                var i = 0
                while i + 8 <= span {
                    var p = first + i
                    var acc = SIMD8(repeating: wp[0]) * T.floats8(p)
                    for j in 1..<max(n, 1) {
                        p += rowStep
                        acc += SIMD8(repeating: wp[j]) * T.floats8(p)
                    }
                    UnsafeMutableRawPointer(o + i).storeBytes(of: acc, as: SIMD8<Float>.self)
                    i += 8
                }
                while i < span {
                    var a = wp[0] * first[i].floatValue
                    for j in 1..<max(n, 1) { a += wp[j] * first[j * rowStep + i].floatValue }
                    o[i] = a
                    i += 1
                }
            }
        }
        // Horizontal: out[y][x][ch] = sum_j h_j tmp[y][hstart_x - colLo + j][ch]
        h.weights.withUnsafeBufferPointer { hw in
        h.start.withUnsafeBufferPointer { hs in
        h.count.withUnsafeBufferPointer { hc in
            let rowLen = outWidth * c
            for y in 0..<outHeight {
                let trow = UnsafePointer(tmp.baseAddress.unsafelyUnwrapped + y * span)
                let orow = out.baseAddress.unsafelyUnwrapped + y * rowLen
                for x in 0..<outWidth {
                    let sp = trow + (hs[x] - colLo) * c
                    let wp = hw.baseAddress.unsafelyUnwrapped + x * h.stride
                    let n = hc[x]
                    if c == 3 {
                        // RGB as the first 3 lanes of a 4-float vector (the 4th, the next
                        // pixel's R, is computed and dropped): per channel the same sums.
                        var a = SIMD4<Float>()
                        for j in 0..<n {
                            a += SIMD4(repeating: wp[j]) * UnsafeRawPointer(sp + j * 3).loadUnaligned(as: SIMD4<Float>.self)
                        }
                        if x + 1 < outWidth {
                            // The 4th lane lands on the next pixel's R, written next.
                            UnsafeMutableRawPointer(orow + x * 3).storeBytes(of: a, as: SIMD4<Float>.self)
                        } else {
                            orow[x * 3] = a[0]
                            orow[x * 3 + 1] = a[1]
                            orow[x * 3 + 2] = a[2]
                        }
                    } else {
                        for ch in 0..<c {
                            var a: Float = 0
                            for j in 0..<n { a += wp[j] * sp[j * c + ch] }
                            orow[x * c + ch] = a
                        }
                    }
                }
            }
        }
        }
        }
    }

    /// The source box of "resize the shorter side to `size` (longer side
    /// int(size * long / short), as torchvision's Resize), then centre-crop
    /// size x size (offset round((resized - size) / 2), ties to even, as
    /// torchvision's CenterCrop)", expressed in source pixels, so the crop is
    /// resampled directly without computing the discarded border.
    public static func centreCropBox(width: Int, height: Int, size: Int) -> PixelBox {
        centreCropBox(width: width, height: height, resize: size, crop: size)
    }

    /// The source box of "shorter side to `size`, centre crop `crop` x `crop`"
    /// (`crop` <= `size`; torchvision Resize(size) + CenterCrop(crop)).
    public static func centreCropBox(width: Int, height: Int, resize size: Int, crop: Int) -> PixelBox {
        let (rw, rh): (Int, Int)
        if width <= height {
            rw = size
            rh = max(Int(Double(size) * Double(height) / Double(width)), size)
        } else {
            rh = size
            rw = max(Int(Double(size) * Double(width) / Double(height)), size)
        }
        let left = (Double(rw - crop) / 2).rounded(.toNearestOrEven)
        let top = (Double(rh - crop) / 2).rounded(.toNearestOrEven)
        let sx = Double(width) / Double(rw), sy = Double(height) / Double(rh)
        return PixelBox(x0: left * sx, y0: top * sy, x1: (left + Double(crop)) * sx, y1: (top + Double(crop)) * sy)
    }

    /// Resize-shorter-side-then-centre-crop of an RGB image to size x size,
    /// rounded and clamped to 8 bits.
    public static func resizeAndCentreCrop(_ image: RGBImage, size: Int) -> [UInt8] {
        let box = centreCropBox(width: image.width, height: image.height, size: size)
        var f = [Float](repeating: 0, count: size * size * 3)
        image.pixels.withUnsafeBufferPointer { src in
            f.withUnsafeMutableBufferPointer { dst in
                resample(src, width: image.width, height: image.height, box: box, outWidth: size, outHeight: size, into: dst)
            }
        }
        // Round half up and clamp to 0...255 (Pillow's 8-bit result), 8 at a time.
        return [UInt8](unsafeUninitializedCapacity: f.count) { bytes, initialized in
            f.withUnsafeBufferPointer { fp in
                var i = 0
                while i + 8 <= f.count {
                    let v = UnsafeRawPointer(fp.baseAddress.unsafelyUnwrapped + i).loadUnaligned(as: SIMD8<Float>.self)
                    // Clamped with masks (`clamped(lowerBound:upperBound:)` compiles to two
                    // out-of-line generic calls); trunc(x + 0.5) is then a whole number in
                    // 0...255, and adding 2^23 puts it in the low mantissa bits exactly
                    // (Swift's float-to-int SIMD conversion is a generic per-lane call).
                    let c = v.replacing(with: 0, where: .!(v .>= 0)).replacing(with: 255, where: v .> 255)
                    let r = (c + 0.5).rounded(.towardZero)
                    let bits = unsafeBitCast(r + 8_388_608, to: SIMD8<UInt32>.self)
                    UnsafeMutableRawPointer(bytes.baseAddress.unsafelyUnwrapped + i).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: bits), as: SIMD8<UInt8>.self)
                    i += 8
                }
                while i < f.count {
                    bytes[i] = UInt8(min(max(fp[i], 0), 255) + 0.5)
                    i += 1
                }
            }
            initialized = f.count
        }
    }
}

extension Resampler {
    /// PyTorch's `F.interpolate(x, size, mode="bicubic", align_corners=False)`
    /// on an NHWC float batch, as the official supernet applies to inputs whose
    /// size differs from the active resolution: no antialiasing, a = -0.75,
    ///     src = (i + 0.5) * in/out - 0.5,  taps floor(src)-1 ... floor(src)+2 clamped to the edge,
    ///     weights cubic_a(t+1), cubic_a(t), cubic_a(1-t), cubic_a(2-t) with t = src - floor(src).
    public static func interpolateBicubic(_ x: [Float], count: Int, height: Int, width: Int, channels: Int = 3, outHeight: Int, outWidth: Int) -> [Float] {
        precondition(x.count == count * height * width * channels, "interpolateBicubic: size does not match the shape")
        if outHeight == height && outWidth == width { return x }
        func taps(_ inSize: Int, _ outSize: Int) -> [(Int, [Float])] {
            let scale = Double(inSize) / Double(outSize)
            let a = -0.75
            func k(_ t: Double) -> Double {
                let t = abs(t)
                if t <= 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
                if t < 2 { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
                return 0
            }
            return (0..<outSize).map { i in
                let src = (Double(i) + 0.5) * scale - 0.5
                let f = src.rounded(.down)
                let t = src - f
                return (Int(f) - 1, [Float(k(t + 1)), Float(k(t)), Float(k(1 - t)), Float(k(2 - t))])
            }
        }
        let tx = taps(width, outWidth), ty = taps(height, outHeight)
        var out = [Float](repeating: 0, count: count * outHeight * outWidth * channels)
        var tmp = [Float](repeating: 0, count: height * outWidth * channels)
        for n in 0..<count {
            let base = n * height * width * channels
            for y in 0..<height {
                for ox in 0..<outWidth {
                    let (s, w) = tx[ox]
                    for c in 0..<channels {
                        var acc: Float = 0
                        for j in 0..<4 { acc += w[j] * x[base + (y * width + min(max(s + j, 0), width - 1)) * channels + c] }
                        tmp[(y * outWidth + ox) * channels + c] = acc
                    }
                }
            }
            let obase = n * outHeight * outWidth * channels
            for oy in 0..<outHeight {
                let (s, w) = ty[oy]
                for i in 0..<(outWidth * channels) {
                    var acc: Float = 0
                    for j in 0..<4 { acc += w[j] * tmp[min(max(s + j, 0), height - 1) * outWidth * channels + i] }
                    out[obase + oy * outWidth * channels + i] = acc
                }
            }
        }
        return out
    }
}
