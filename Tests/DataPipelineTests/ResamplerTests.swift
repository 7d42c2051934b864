@testable import DataPipeline
import System
import FileFormats
import Foundation
import Testing
import TestSupport

@Suite("Resampling")
struct ResamplerTests {
    @Test func identityAndConstantsArePreserved() {
        let px = Photo.make(width: 21, height: 13, seed: 7)
        let same = Resampler.resizeAndCentreCrop(RGBImage(width: 13, height: 13, pixels: Array(px[0..<(13 * 13 * 3)])), size: 13)
        #expect(same == Array(px[0..<(13 * 13 * 3)]))
        let flat = RGBImage(width: 50, height: 31, pixels: [UInt8](repeating: 200, count: 50 * 31 * 3))
        for s in [1, 7, 31, 64] {
            #expect(Resampler.resizeAndCentreCrop(flat, size: s).allSatisfy { $0 == 200 })
        }
    }

    @Test(arguments: [(500, 375), (375, 500), (99, 100), (640, 427)])
    func centreCropBoxFollowsTorchvision(size: (Int, Int)) {
        // Resize(224): shorter side 224, longer int(224 * long / short); CenterCrop: round((L - 224) / 2).
        let (w, h) = size
        let box = Resampler.centreCropBox(width: w, height: h, size: 224)
        let long = Int(224.0 * Double(max(w, h)) / Double(min(w, h)))
        let off = (Double(long - 224) / 2).rounded(.toNearestOrEven)
        let scale = Double(min(w, h)) / 224
        let (o0, o1) = w >= h ? (box.x0, box.x1) : (box.y0, box.y1)
        #expect(abs(o0 - off * Double(w >= h ? w : h) / Double(long)) < 1e-9)
        #expect(abs((o1 - o0) - 224 * Double(w >= h ? w : h) / Double(long)) < 1e-9)
        let (s0, s1) = w >= h ? (box.y0, box.y1) : (box.x0, box.x1)
        #expect(s0 == 0 && abs(s1 - 224 * scale) < 1e-9)
    }

    /// Our decode (DCT-scaled as pack-imagenet does) + resize + crop against
    /// Pillow's `resize(BICUBIC)` + centre crop of the full-size decode, on
    /// photo-like JPEGs of several sizes (Pillow: a failure under CI, else skipped).
    @Test(.requires(.pillow), arguments: [64, 224])
    func withinPSNROfPillow(size: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("resample-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let shapes = [(500, 375), (375, 500), (640, 480), (300, 200), (1024, 683)]
        for (i, (w, h)) in shapes.enumerated() {
            let jpeg = ImageCodec.encodeJPEG(pixels: Photo.make(width: w, height: h, seed: UInt64(i)), width: w, height: h, quality: 90)
            try Data(jpeg).write(to: dir.appendingPathComponent("\(i).jpg"))
        }
        let script = """
            import sys
            from PIL import Image
            S = int(sys.argv[2])
            for i in range(int(sys.argv[3])):
                im = Image.open(f"{sys.argv[1]}/{i}.jpg").convert("RGB")
                w, h = im.size
                nw, nh = (S, int(S * h / w)) if w <= h else (int(S * w / h), S)
                im = im.resize((nw, nh), Image.BICUBIC)
                l, t = int(round((nw - S) / 2.0)), int(round((nh - S) / 2.0))
                open(f"{sys.argv[1]}/{i}.rgb", "wb").write(im.crop((l, t, l + S, t + S)).tobytes())
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.path, String(size), String(shapes.count)]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        for i in shapes.indices {
            let jpeg = try readWholeFile(dir.appendingPathComponent("\(i).jpg").path)
            let reference = try readWholeFile(dir.appendingPathComponent("\(i).rgb").path)
            let ours = Resampler.resizeAndCentreCrop(try ImageCodec.decode(jpeg, minimumShortSide: 2 * size), size: size)
            let full = Resampler.resizeAndCentreCrop(try ImageCodec.decode(jpeg), size: size)
            #expect(Photo.psnr(ours, reference) >= 35, "image \(shapes[i]) at \(size): DCT-scaled \(Photo.psnr(ours, reference)) dB")
            #expect(Photo.psnr(full, reference) >= 40, "image \(shapes[i]) at \(size): full decode \(Photo.psnr(full, reference)) dB")
        }
    }

    @Test func torchBicubicInterpolationKeepsConstantsAndIdentity() {
        let x = (0..<(2 * 5 * 5 * 3)).map { Float($0 % 17) }
        #expect(Resampler.interpolateBicubic(x, count: 2, height: 5, width: 5, outHeight: 5, outWidth: 5) == x)
        let c = [Float](repeating: -1.5, count: 4 * 4 * 3)
        let up = Resampler.interpolateBicubic(c, count: 1, height: 4, width: 4, outHeight: 7, outWidth: 9)
        #expect(up.count == 7 * 9 * 3)
        #expect(up.allSatisfy { abs($0 + 1.5) < 1e-5 })
    }
}
