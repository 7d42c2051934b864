#if canImport(Glibc)
import Glibc
#endif

extension RGBImage {
    /// An image of one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) { (px[3 * p], px[3 * p + 1], px[3 * p + 2]) = fill }
        self.init(width: width, height: height, pixels: px)
    }
}

/// The Pillow operations the official AutoAugment (`auto_augment_tf.py`) applies,
/// bit for bit as Pillow 13 computes them on an "RGB" image: the same integer and
/// float arithmetic in the same order (ImageOps' look-up tables, `Image.blend` in
/// float, the luma of `convert("L")`, `Image.transform`'s three affine engines).
/// Each is checked against Pillow on fixed images by the tests.
public enum PillowOps {
    /// Pillow's resampling filters for `transform` and `rotate` (their Pillow ids).
    public enum Resample: Int, Sendable, CaseIterable {
        case nearest = 0, bilinear = 2, bicubic = 3
    }

    // MARK: Look-up tables (ImageOps)

    /// `Image.point` with one 256-entry table for every band.
    static func applyTable(_ image: RGBImage, _ table: [UInt8]) -> RGBImage {
        var out = image
        for i in out.pixels.indices { out.pixels[i] = table[Int(out.pixels[i])] }
        return out
    }

    /// `applyTable` with one table per band.
    static func applyTables(_ image: RGBImage, _ tables: [[UInt8]]) -> RGBImage {
        var out = image
        for i in out.pixels.indices { out.pixels[i] = tables[i % 3][Int(out.pixels[i])] }
        return out
    }

    /// Histogram of each band: [band][value] counts.
    static func histograms(_ image: RGBImage) -> [[Int]] {
        var h = [[Int]](repeating: [Int](repeating: 0, count: 256), count: 3)
        for i in image.pixels.indices { h[i % 3][Int(image.pixels[i])] += 1 }
        return h
    }

    /// Pillow's CLIP8 on an integer table entry.
    static func clip8(_ v: Int) -> UInt8 { UInt8(min(max(v, 0), 255)) }

    /// `ImageOps.autocontrast(image)` (cutoff 0): per band, the darkest value present
    /// to 0 and the lightest to 255, lut[i] = int(i * 255/(hi-lo) - lo * 255/(hi-lo)).
    public static func autocontrast(_ image: RGBImage) -> RGBImage {
        let tables = histograms(image).map { h -> [UInt8] in
            let lo = h.firstIndex { $0 != 0 } ?? 255
            let hi = h.lastIndex { $0 != 0 } ?? 0
            if hi <= lo { return (0...255).map { UInt8($0) } }
            let scale = 255.0 / Double(hi - lo)
            let offset = -Double(lo) * scale
            return (0...255).map { clip8(Int(Double($0) * scale + offset)) }
        }
        return applyTables(image, tables)
    }

    /// `ImageOps.equalize(image)`: per band, step = (pixels - count of the last
    /// value present) // 255, lut[i] = (step // 2 + pixels below i) // step.
    public static func equalize(_ image: RGBImage) -> RGBImage {
        let tables = histograms(image).map { h -> [UInt8] in
            let present = h.filter { $0 != 0 }
            let identity = (0...255).map { UInt8($0) }
            guard present.count > 1, let last = present.last else { return identity }
            let step = (present.reduce(0, +) - last) / 255
            guard step > 0 else { return identity }
            var n = step / 2
            var table = [UInt8](repeating: 0, count: 256)
            for i in 0..<256 {
                table[i] = clip8(n / step)
                n += h[i]
            }
            return table
        }
        return applyTables(image, tables)
    }

    /// `ImageOps.invert`: 255 - v.
    public static func invert(_ image: RGBImage) -> RGBImage {
        applyTable(image, (0...255).map { UInt8(255 - $0) })
    }

    /// `ImageOps.solarize(image, threshold)`: values >= threshold inverted.
    public static func solarize(_ image: RGBImage, threshold: Int) -> RGBImage {
        applyTable(image, (0...255).map { UInt8($0 < threshold ? $0 : 255 - $0) })
    }

    /// The official `solarize_add`: values below `threshold` get `add` more (at most 255).
    public static func solarizeAdd(_ image: RGBImage, add: Int, threshold: Int = 128) -> RGBImage {
        applyTable(image, (0...255).map { $0 < threshold ? clip8($0 + add) : UInt8($0) })
    }

    /// `ImageOps.posterize(image, bits)`: the low 8 - bits bits cleared (1 <= bits <= 8).
    public static func posterize(_ image: RGBImage, bits: Int) -> RGBImage {
        precondition((1...8).contains(bits), "posterize: bits \(bits)")
        let mask = ~((1 << (8 - bits)) - 1)
        return applyTable(image, (0...255).map { UInt8($0 & mask) })
    }

    // MARK: Enhancements (ImageEnhance: blend with a degenerate image)

    /// `convert("L")`: ITU-R 601-2 luma in 16.16 fixed point, rounded.
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let weighted: Int = Int(r) * 19595 + Int(g) * 38470 + Int(b) * 7471
        return UInt8((weighted + 0x8000) >> 16)
    }

    /// `Image.blend(a, b, alpha)`: a + alpha * (b - a) in float, truncated; clipped
    /// to 0...255 only when alpha lies outside [0, 1] (as Pillow's two loops).
    public static func blend(_ a: RGBImage, _ b: RGBImage, alpha: Float) -> RGBImage {
        precondition(a.width == b.width && a.height == b.height, "blend: sizes differ")
        if alpha == 0 { return a }
        if alpha == 1 { return b }
        var out = a
        let interpolate = alpha >= 0 && alpha <= 1
        for i in out.pixels.indices {
            let x = Int(a.pixels[i]), y = Int(b.pixels[i])
            let v: Float = Float(x) + alpha * Float(y - x)
            if interpolate {
                out.pixels[i] = UInt8(v)
            } else {
                out.pixels[i] = v <= 0 ? 0 : v >= 255 ? 255 : UInt8(v)
            }
        }
        return out
    }

    /// `ImageEnhance.Color(image).enhance(factor)`: blend with the image's grey version.
    public static func color(_ image: RGBImage, factor: Double) -> RGBImage {
        var grey = image
        for p in 0..<(image.width * image.height) {
            let l = luma(image.pixels[3 * p], image.pixels[3 * p + 1], image.pixels[3 * p + 2])
            (grey.pixels[3 * p], grey.pixels[3 * p + 1], grey.pixels[3 * p + 2]) = (l, l, l)
        }
        return blend(grey, image, alpha: Float(factor))
    }

    /// `ImageEnhance.Contrast(image).enhance(factor)`: blend with a flat image at the
    /// rounded mean luma.
    public static func contrast(_ image: RGBImage, factor: Double) -> RGBImage {
        var sum = 0.0
        let n = image.width * image.height
        var h = [Int](repeating: 0, count: 256)
        for p in 0..<n { h[Int(luma(image.pixels[3 * p], image.pixels[3 * p + 1], image.pixels[3 * p + 2]))] += 1 }
        for j in 0..<256 { sum += Double(j * h[j]) }
        let mean = UInt8(clamping: n > 0 ? Int(sum / Double(n) + 0.5) : 0)
        return blend(RGBImage(width: image.width, height: image.height, fill: (mean, mean, mean)), image, alpha: Float(factor))
    }

    /// `ImageEnhance.Brightness(image).enhance(factor)`: blend with black.
    public static func brightness(_ image: RGBImage, factor: Double) -> RGBImage {
        blend(RGBImage(width: image.width, height: image.height, fill: (0, 0, 0)), image, alpha: Float(factor))
    }

    /// `ImageEnhance.Sharpness(image).enhance(factor)`: blend with `ImageFilter.SMOOTH`
    /// (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13, float, +0.5, truncated; the border
    /// rows and columns copied).
    public static func sharpness(_ image: RGBImage, factor: Double) -> RGBImage {
        let w = image.width, h = image.height
        guard w >= 3 && h >= 3 else { return blend(image, image, alpha: Float(factor)) }
        let k: [Float] = [1, 1, 1, 1, 5, 1, 1, 1, 1].map { Float($0) / 13 }
        var smooth = image
        let px = image.pixels
        for y in 1..<(h - 1) {
            for x in 1..<(w - 1) {
                for c in 0..<3 {
                    func at(_ yy: Int, _ xx: Int) -> Float { Float(px[(yy * w + xx) * 3 + c]) }
                    func row(_ yy: Int, _ k0: Int) -> Float { at(yy, x - 1) * k[k0] + at(yy, x) * k[k0 + 1] + at(yy, x + 1) * k[k0 + 2] }
                    var ss: Float = 0.5
                    ss += row(y + 1, 0)
                    ss += row(y, 3)
                    ss += row(y - 1, 6)
                    ss = min(max(ss, 0), 255)
                    smooth.pixels[(y * w + x) * 3 + c] = UInt8(ss)
                }
            }
        }
        return blend(smooth, image, alpha: Float(factor))
    }

    // MARK: Geometry (Image.transform AFFINE, Image.rotate)

    /// `image.transform(image.size, AFFINE, m, resample, fillcolor: fill)`: output pixel
    /// (x, y) samples the input at (m0 x + m1 y + m2, m3 x + m4 y + m5) (pixel centres
    /// at +0.5); what falls outside keeps `fill`. Pillow's engines: nearest is fixed
    /// point 16.16 (or a pretabulated scale when m1 = m3 = 0), bilinear and bicubic
    /// (a = -0.5) in double with edge pixels repeated, truncated to 8 bits.
    public static func affine(_ image: RGBImage, _ m: [Double], resample: Resample, fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        precondition(m.count == 6, "affine: 6 coefficients")
        var out = RGBImage(width: image.width, height: image.height, fill: fill)
        switch resample {
        case .nearest where m[1] == 0 && m[3] == 0:
            nearestScale(image, m, into: &out)
        case .nearest:
            nearestAffine(image, m, into: &out)
        case .bilinear, .bicubic:
            let w = image.width, h = image.height
            for y in 0..<h {
                for x in 0..<w {
                    let xi = Double(x) + 0.5, yi = Double(y) + 0.5
                    let sx = m[0] * xi + m[1] * yi + m[2]
                    let sy = m[3] * xi + m[4] * yi + m[5]
                    guard sx >= 0 && sx < Double(w) && sy >= 0 && sy < Double(h) else { continue }
                    for c in 0..<3 {
                        out.pixels[(y * w + x) * 3 + c] = resample == .bilinear
                            ? bilinear(image, sx, sy, channel: c) : bicubic(image, sx, sy, channel: c)
                    }
                }
            }
        }
        return out
    }

    /// Pillow's COORD: -1 below 0, else truncation.
    static func coord(_ v: Double) -> Int { v < 0 ? -1 : Int(v) }
    /// Pillow's FLOOR.
    static func floorInt(_ v: Double) -> Int { v < 0 ? Int(Glibc.floor(v)) : Int(v) }

    /// ImagingScaleAffine: positions accumulated in double, column sources pretabulated.
    static func nearestScale(_ image: RGBImage, _ a: [Double], into out: inout RGBImage) {
        let w = image.width, h = image.height
        var xo = a[2] + a[0] * 0.5
        var yo = a[5] + a[4] * 0.5
        var xin = [Int](repeating: -1, count: out.width)
        for x in 0..<out.width {
            let s = coord(xo)
            if s >= 0 && s < w { xin[x] = s }
            xo += a[0]
        }
        for y in 0..<out.height {
            let yi = coord(yo)
            if yi >= 0 && yi < h {
                for x in 0..<out.width where xin[x] >= 0 {
                    for c in 0..<3 { out.pixels[(y * out.width + x) * 3 + c] = image.pixels[(yi * w + xin[x]) * 3 + c] }
                }
            }
            yo += a[4]
        }
    }

    /// affine_fixed: 16.16 fixed point, FIX(v) = floor(v * 65536 + 0.5), sources v >> 16.
    /// (Pillow's double fallback applies only beyond +-32768 pixels, which the callers never reach.)
    static func nearestAffine(_ image: RGBImage, _ a: [Double], into out: inout RGBImage) {
        func fix(_ v: Double) -> Int { floorInt(v * 65536 + 0.5) }
        let w = image.width, h = image.height
        let a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4])
        var a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5)
        var a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5)
        for y in 0..<out.height {
            var xx = a2, yy = a5
            for x in 0..<out.width {
                let xs = xx >> 16
                if xs >= 0 && xs < w {
                    let ys = yy >> 16
                    if ys >= 0 && ys < h {
                        for c in 0..<3 { out.pixels[(y * out.width + x) * 3 + c] = image.pixels[(ys * w + xs) * 3 + c] }
                    }
                }
                xx += a0
                yy += a3
            }
            a2 += a1
            a5 += a4
        }
    }

    static func sample(_ image: RGBImage, _ x: Int, _ y: Int, _ c: Int) -> Double {
        let xc = min(max(x, 0), image.width - 1), yc = min(max(y, 0), image.height - 1)
        return Double(image.pixels[(yc * image.width + xc) * 3 + c])
    }

    /// bilinear_filter32RGB (the caller checked 0 <= x < width, 0 <= y < height).
    static func bilinear(_ image: RGBImage, _ xin: Double, _ yin: Double, channel c: Int) -> UInt8 {
        let xs = xin - 0.5, ys = yin - 0.5
        let x = floorInt(xs), y = floorInt(ys)
        let dx = xs - Double(x), dy = ys - Double(y)
        func lerp(_ a: Double, _ b: Double, _ d: Double) -> Double { a + (b - a) * d }
        let v1 = lerp(sample(image, x, y, c), sample(image, x + 1, y, c), dx)
        // Rows below the image repeat the last one read (Pillow's v2 = v1).
        let v2 = y + 1 >= 0 && y + 1 < image.height ? lerp(sample(image, x, y + 1, c), sample(image, x + 1, y + 1, c), dx) : v1
        return UInt8(lerp(v1, v2, dy))
    }

    /// bicubic_filter32RGB: Pillow's cubic (a = -0.5) on 4x4 neighbours, clipped, truncated.
    static func bicubic(_ image: RGBImage, _ xin: Double, _ yin: Double, channel c: Int) -> UInt8 {
        let xs = xin - 0.5, ys = yin - 0.5
        let x = floorInt(xs) - 1, y = floorInt(ys) - 1
        let dx = xs - Double(floorInt(xs)), dy = ys - Double(floorInt(ys))
        func cubic(_ v1: Double, _ v2: Double, _ v3: Double, _ v4: Double, _ d: Double) -> Double {
            let p1 = v2
            let p2 = -v1 + v3
            let p3 = 2 * (v1 - v2) + v3 - v4
            let p4 = -v1 + v2 - v3 + v4
            return p1 + d * (p2 + d * (p3 + d * p4))
        }
        func row(_ yy: Int) -> Double {
            cubic(sample(image, x, yy, c), sample(image, x + 1, yy, c), sample(image, x + 2, yy, c), sample(image, x + 3, yy, c), dx)
        }
        let v1 = row(y)
        let v2 = y + 1 >= 0 && y + 1 < image.height ? row(y + 1) : v1
        let v3 = y + 2 >= 0 && y + 2 < image.height ? row(y + 2) : v2
        let v4 = y + 3 >= 0 && y + 3 < image.height ? row(y + 3) : v3
        let v = cubic(v1, v2, v3, v4, dy)
        return v <= 0 ? 0 : v >= 255 ? 255 : UInt8(v)
    }

    /// `image.rotate(degrees, resample, fillcolor: fill)`: counter-clockwise about the
    /// centre, the image size kept. Pillow's matrix: cos and sin of -radians(degrees
    /// mod 360) rounded to 15 decimals, the centre moved back; 0 degrees is a copy.
    public static func rotate(_ image: RGBImage, degrees: Double, resample: Resample, fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        var angle = fmod(degrees, 360)
        if angle != 0 && angle < 0 { angle += 360 }
        if angle == 0 { return image }
        // 90, 180 and 270 are transposes in Pillow; AutoAugment's +-30 degrees never reach them.
        let theta = -(angle * (Double.pi / 180))
        let cosT = round15(cos(theta)), sinT = round15(sin(theta))
        var m = [cosT, sinT, 0.0, round15(-sin(theta)), cosT, 0.0]
        let cx = Double(image.width) / 2, cy = Double(image.height) / 2
        let tx = m[0] * -cx + m[1] * -cy + m[2]
        let ty = m[3] * -cx + m[4] * -cy + m[5]
        m[2] = tx + cx
        m[5] = ty + cy
        return affine(image, m, resample: resample, fill: fill)
    }

    /// Python's round(v, 15): the double nearest to v's exact value rounded to 15
    /// decimals (glibc's printf rounds the exact binary value, as CPython's dtoa).
    static func round15(_ v: Double) -> Double {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBufferPointer { p in
            withVaList([v]) { vsnprintf(p.baseAddress, 64, "%.15f", $0) }
        }
        precondition(n > 0 && n < 64, "round15: \(v)")
        return buffer.withUnsafeBufferPointer { p in p.baseAddress.map { strtod($0, nil) } ?? v }
    }
}
