@testable import DataPipeline
import Foundation
import Testing

/// Synthetic "photos": smooth gradients plus seeded texture, so resampling has
/// both low and high frequencies to get right.
enum Photo {
    static func make(width: Int, height: Int, seed: UInt64) -> [UInt8] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17
                    let smooth = 127.5 + 100 * sin(Double(x) * 0.05 * Double(c + 1) + Double(y) * 0.03)
                    let noise = Double(s % 41) - 20
                    px[(y * width + x) * 3 + c] = UInt8(max(0, min(255, smooth + noise)))
                }
            }
        }
        return px
    }

    static func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double {
        precondition(a.count == b.count)
        var se = 0.0
        for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); se += d * d }
        let mse = se / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

}

@Suite("Image codecs")
struct ImageCodecTests {
    @Test func jpegRoundTripKeepsSizeAndContent() throws {
        let px = Photo.make(width: 64, height: 48, seed: 1)
        let jpeg = ImageCodec.encodeJPEG(pixels: px, width: 64, height: 48, quality: 95)
        #expect(ImageFormat.sniff(jpeg) == .jpeg)
        let img = try ImageCodec.decode(jpeg)
        #expect(img.width == 64 && img.height == 48)
        #expect(Photo.psnr(img.pixels, px) > 28)
    }

    @Test func greyscaleCmykAndPngComeOutRGB() throws {
        let grey = [UInt8](repeating: 77, count: 20 * 10)
        let g = try ImageCodec.decode(ImageCodec.encodeJPEG(pixels: grey, width: 20, height: 10, channels: 1))
        #expect(g.pixels.count == 20 * 10 * 3)
        #expect(g.pixels.allSatisfy { abs(Int($0) - 77) <= 1 })
        // CMYK written Adobe-style (inverted); C=0 M=128 Y=255 K=64 in ink terms:
        // R = (255-C)(255-K)/255 = 191, G = 127*191/255 = 95, B = 0.
        let ink: [UInt8] = [0, 128, 255, 64]
        let stored = (0..<(16 * 16)).flatMap { _ in ink.map { 255 - $0 } }
        let c = try ImageCodec.decode(ImageCodec.encodeJPEG(pixels: stored, width: 16, height: 16, channels: 4, quality: 100))
        let mid = (8 * 16 + 8) * 3
        #expect(abs(Int(c.pixels[mid]) - 191) <= 3)
        #expect(abs(Int(c.pixels[mid + 1]) - 95) <= 3)
        #expect(Int(c.pixels[mid + 2]) <= 3)
        let rgb = Photo.make(width: 9, height: 7, seed: 2)
        let png = ImageCodec.encodePNG(pixels: rgb, width: 9, height: 7)
        let p = try ImageCodec.decode(png)
        #expect(p.pixels == rgb)
        let greyPNG = try ImageCodec.decode(ImageCodec.encodePNG(pixels: [0, 100, 200, 255], width: 2, height: 2, channels: 1))
        #expect(greyPNG.pixels == [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255])
    }

    @Test func dctScalingStopsAtTheRequestedShortSide() throws {
        let jpeg = ImageCodec.encodeJPEG(pixels: Photo.make(width: 400, height: 300, seed: 3), width: 400, height: 300)
        #expect(try ImageCodec.decode(jpeg, minimumShortSide: 0).width == 400)
        #expect(try ImageCodec.decode(jpeg, minimumShortSide: 150).height == 150)  // 1/2
        #expect(try ImageCodec.decode(jpeg, minimumShortSide: 70).height == 75)    // 1/4
        #expect(try ImageCodec.decode(jpeg, minimumShortSide: 1).height == 38)     // 1/8 at most
        #expect(try ImageCodec.decode(jpeg, minimumShortSide: 151).height == 300)
    }

    @Test func badDataThrowsInsteadOfCrashing() throws {
        let jpeg = ImageCodec.encodeJPEG(pixels: Photo.make(width: 64, height: 64, seed: 4), width: 64, height: 64)
        #expect(throws: ImageDecodeError.self) { try ImageCodec.decode(Array(jpeg.prefix(jpeg.count / 2))) }
        do {
            _ = try ImageCodec.decode(Array(jpeg.prefix(jpeg.count / 2)))
        } catch {
            guard case .truncated = error else { Issue.record("expected .truncated, got \(error)"); return }
        }
        #expect(throws: ImageDecodeError.notAnImage("empty file")) { try ImageCodec.decode([]) }
        #expect(throws: ImageDecodeError.self) { try ImageCodec.decode(Array("hello world".utf8)) }
        var garbled = jpeg
        for i in 2..<min(200, garbled.count) { garbled[i] = UInt8(truncatingIfNeeded: i &* 31) }
        #expect(throws: ImageDecodeError.self) { try ImageCodec.decode(garbled) }
        let png = ImageCodec.encodePNG(pixels: Photo.make(width: 30, height: 30, seed: 5), width: 30, height: 30)
        #expect(throws: ImageDecodeError.self) { try ImageCodec.decode(Array(png.prefix(png.count - 20))) }
    }

    /// Both implementations (SHA-NI where the CPU has it, and the portable code).
    @Test(arguments: [true, false]) func sha256MatchesStandardVectors(hardware: Bool) {
        #expect(SHA256.hex([], hardware: hardware) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8), hardware: hardware) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8), hardware: hardware)
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256(hardware: hardware)
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { h.update(chunk) }
        #expect(h.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// SHA-NI and the portable code agree on random data of every length around the
    /// block and padding boundaries, fed whole and in uneven pieces.
    @Test(.enabled(if: SHA256.hardwareAvailable, "this CPU has no SHA extensions: only the portable code runs here"))
    func sha256HardwareMatchesPortable() throws {
        var state: UInt64 = 256
        let data = (0..<5000).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        for n in Array(0...130) + [191, 192, 193, 1000, 4095, 4096, 5000] {
            let bytes = Array(data.prefix(n))
            #expect(SHA256.hex(bytes, hardware: true) == SHA256.hex(bytes, hardware: false), "length \(n)")
            var pieces = SHA256(hardware: true)
            var i = 0, step = 1
            while i < n { let j = min(n, i + step); pieces.update(Array(bytes[i..<j])); i = j; step = step * 3 % 97 + 1 }
            var whole = SHA256(hardware: false)
            whole.update(bytes)
            #expect(pieces.finalize() == whole.finalize(), "length \(n), in pieces")
        }
    }
}

