@testable import DataPipeline
import Foundation
import Testing

/// Images whose header claims more pixels than `ImageCodec.maxPixels` are refused
/// from the header, before any pixel memory is allocated.
@Suite("Image bombs")
struct ImageBombTests {
    /// A small JPEG whose SOF0 frame header is patched to claim `width` x `height`.
    static func jpeg(claiming width: Int, _ height: Int) throws -> [UInt8] {
        var bytes = ImageCodec.encodeJPEG(pixels: [UInt8](repeating: 128, count: 16 * 16 * 3), width: 16, height: 16)
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        let sof = try #require((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        bytes[sof + 5] = UInt8(height >> 8); bytes[sof + 6] = UInt8(height & 0xFF)
        bytes[sof + 7] = UInt8(width >> 8); bytes[sof + 8] = UInt8(width & 0xFF)
        return bytes
    }

    /// A small PNG whose IHDR is patched to claim `width` x `height` (CRC recomputed).
    static func png(claiming width: UInt32, _ height: UInt32) -> [UInt8] {
        var bytes = ImageCodec.encodePNG(pixels: [UInt8](repeating: 7, count: 8 * 8 * 3), width: 8, height: 8)
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), ..., CRC over type + data.
        for (i, v) in [width, height].enumerated() {
            for b in 0..<4 { bytes[16 + 4 * i + b] = UInt8((v >> (24 - 8 * UInt32(b))) & 0xFF) }
        }
        let crc = crc32(bytes[12..<29])
        for b in 0..<4 { bytes[29 + b] = UInt8((crc >> (24 - 8 * UInt32(b))) & 0xFF) }
        return bytes
    }

    static func crc32(_ data: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in data {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    @Test func jpegClaimingAHugeSizeIsRefused() throws {
        let bomb = try Self.jpeg(claiming: 60000, 60000)
        #expect(bomb.count < 1000)
        #expect(throws: ImageDecodeError.tooLarge("jpeg: 60000x60000 is above the limit of \(ImageCodec.maxPixels) pixels")) {
            try ImageCodec.decode(bomb)
        }
        // Below the limit the same patch only makes the data wrong, not refused as too large.
        let fine = try Self.jpeg(claiming: 16, 16)
        #expect(try ImageCodec.decode(fine).width == 16)
    }

    @Test func pngClaimingAHugeSizeIsRefused() throws {
        let ok = Self.png(claiming: 8, 8)
        #expect(try ImageCodec.decode(ok).width == 8, "the CRC patch itself is right")
        #expect(throws: ImageDecodeError.tooLarge("png: 40000x40000 is above the limit of \(ImageCodec.maxPixels) pixels")) {
            try ImageCodec.decode(Self.png(claiming: 40000, 40000))
        }
    }
}
