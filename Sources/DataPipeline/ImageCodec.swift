import CImageCodecs

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC).
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// `width * height * 3` bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3, "RGBImage: \(width)x\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Why an image could not be decoded. The packer prints it after the file name.
public enum ImageDecodeError: Error, CustomStringConvertible, Equatable, Sendable {
    case notAnImage(String)
    case corrupt(String)
    case truncated(String)
    case tooLarge(String)

    public var description: String {
        switch self {
        case let .notAnImage(why): return "not an image: \(why)"
        case let .corrupt(why): return "corrupt image: \(why)"
        case let .truncated(why): return "truncated image: \(why)"
        case let .tooLarge(why): return "image too large: \(why)"
        }
    }
}

/// The image formats recognised by their first bytes (never by file name:
/// ImageNet holds PNG files named `.JPEG`).
public enum ImageFormat: String, Sendable {
    case jpeg, png

    /// JPEG starts with FF D8 FF, PNG with 89 'P' 'N' 'G' 0D 0A 1A 0A.
    public static func sniff<C: Collection>(_ bytes: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(bytes.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head.count >= 8, head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }
}

/// JPEG (libjpeg-turbo) and PNG (libpng) through the CImageCodecs shim, which
/// catches libjpeg's longjmp errors and returns status codes; each C function is
/// wrapped once here and its status turned into a thrown `ImageDecodeError`.
public enum ImageCodec {
    /// Images whose header claims more pixels are refused before anything is decoded
    /// or allocated (a tiny file can claim 60000x60000): 2^28, 268 Mpixel, far above
    /// any ImageNet photo.
    public static let maxPixels = 1 << 28

    /// Decodes a JPEG or PNG to RGB. Greyscale is replicated to three channels,
    /// CMYK JPEGs are converted as Pillow does (R = (255-C)(255-K)/255).
    /// With `minimumShortSide` > 0, a JPEG much larger than needed is decoded
    /// with DCT scaling by 1/2, 1/4 or 1/8: the largest factor whose shorter
    /// side stays >= `minimumShortSide`. PNGs are always decoded at full size.
    public static func decode(_ bytes: [UInt8], minimumShortSide: Int = 0) throws(ImageDecodeError) -> RGBImage {
        guard let format = ImageFormat.sniff(bytes) else {
            let head = bytes.prefix(4).map { String($0, radix: 16) }.joined(separator: " ")
            throw .notAnImage(bytes.isEmpty ? "empty file" : "neither JPEG nor PNG (first bytes \(head))")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0, sw: Int32 = 0, sh: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status: Int32 = bytes.withUnsafeBufferPointer { src in
            message.withUnsafeMutableBufferPointer { msg in
                switch format {
                case .jpeg:
                    return an_jpeg_decode(src.baseAddress, src.count, Int32(clamping: minimumShortSide), UInt64(maxPixels), &out, &w, &h, &sw, &sh, msg.baseAddress, msg.count)
                case .png:
                    return an_png_decode(src.baseAddress, src.count, UInt64(maxPixels), &out, &w, &h, msg.baseAddress, msg.count)
                }
            }
        }
        defer { an_free(out) }
        let why = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch Int(status) {
        case Int(AN_OK): break
        case Int(AN_TRUNCATED): throw .truncated("\(format.rawValue): \(why)")
        case Int(AN_NOMEM), Int(AN_TOO_LARGE): throw .tooLarge("\(format.rawValue): \(why)")
        default: throw .corrupt("\(format.rawValue): \(why)")
        }
        guard let out, w > 0, h > 0 else { throw .corrupt("\(format.rawValue): no pixels") }
        guard Int(w) * Int(h) <= maxPixels else { throw .tooLarge("\(w)x\(h)") }
        let n = Int(w) * Int(h) * 3
        return RGBImage(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: out, count: n)))
    }

    /// Encodes 8-bit pixels as a baseline JPEG (`channels` 1 grey, 3 RGB,
    /// 4 CMYK written Adobe-style). For fixtures and benchmarks.
    public static func encodeJPEG(pixels: [UInt8], width: Int, height: Int, channels: Int = 3, quality: Int = 90) -> [UInt8] {
        precondition([1, 3, 4].contains(channels) && pixels.count == width * height * channels, "encodeJPEG: bad shape")
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { src in
            an_jpeg_encode(src.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality), &out, &size, &message, message.count)
        }
        defer { an_free(out) }
        precondition(status == Int32(AN_OK), "libjpeg could not encode a \(width)x\(height) image")
        guard let out else { return [] }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Encodes 8-bit pixels as PNG (`channels` 1 grey, 3 RGB, 4 RGBA).
    public static func encodePNG(pixels: [UInt8], width: Int, height: Int, channels: Int = 3) -> [UInt8] {
        precondition([1, 3, 4].contains(channels) && pixels.count == width * height * channels, "encodePNG: bad shape")
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { src in
            an_png_encode(src.baseAddress, Int32(width), Int32(height), Int32(channels), &out, &size, &message, message.count)
        }
        defer { an_free(out) }
        precondition(status == Int32(AN_OK), "libpng could not encode a \(width)x\(height) image")
        guard let out else { return [] }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}
