@testable import DataPipeline
import FileFormats
import Foundation
import NASCore
import System
import Testing
import TestSupport

/// The official AutoAugment (`auto_augment_tf`): each Pillow operation against Pillow
/// itself, byte for byte, and the policy's choices against its table.
@Suite("AutoAugment")
struct AutoAugmentTests {
    /// Fixed images: a photo-like one, a low-contrast one (so autocontrast and equalize
    /// have work), an odd-sized noisy one, and a tiny one (Pillow's filter leaves 2x2 alone).
    static let images: [RGBImage] = {
        let photo = RGBImage(width: 40, height: 32, pixels: Photo.make(width: 40, height: 32, seed: 3))
        let dull = RGBImage(width: 33, height: 27, pixels: Photo.make(width: 33, height: 27, seed: 5).map { UInt8(60 + Int($0) / 3) })
        var random = SeededRandom(seed: 11)
        let noise = RGBImage(width: 19, height: 23, pixels: (0..<(19 * 23 * 3)).map { _ in UInt8(random.next() % 256) })
        let tiny = RGBImage(width: 2, height: 2, pixels: [10, 200, 30, 90, 0, 255, 128, 64, 32, 1, 2, 3])
        return [photo, dull, noise, tiny]
    }()

    /// One operation with its argument, as the Python side spells it.
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var argument: Double
        var resample: PillowOps.Resample
        var description: String { "\(name)(\(argument), \(resample))" }

        func apply(_ image: RGBImage) -> RGBImage {
            let f = AutoAugment.fill
            switch name {
            case "autocontrast": return PillowOps.autocontrast(image)
            case "equalize": return PillowOps.equalize(image)
            case "invert": return PillowOps.invert(image)
            case "solarize": return PillowOps.solarize(image, threshold: Int(argument))
            case "solarize_add": return PillowOps.solarizeAdd(image, add: Int(argument))
            case "posterize": return PillowOps.posterize(image, bits: Int(argument))
            case "color": return PillowOps.color(image, factor: argument)
            case "contrast": return PillowOps.contrast(image, factor: argument)
            case "brightness": return PillowOps.brightness(image, factor: argument)
            case "sharpness": return PillowOps.sharpness(image, factor: argument)
            case "rotate": return PillowOps.rotate(image, degrees: argument, resample: resample, fill: f)
            case "shear_x": return PillowOps.affine(image, [1, argument, 0, 0, 1, 0], resample: resample, fill: f)
            case "shear_y": return PillowOps.affine(image, [1, 0, 0, argument, 1, 0], resample: resample, fill: f)
            case "translate_y_rel": return PillowOps.affine(image, [1, 0, 0, 0, 1, argument * Double(image.height)], resample: resample, fill: f)
            default: preconditionFailure("unknown case \(name)")
            }
        }
    }

    static let cases: [Case] = {
        var c: [Case] = []
        for name in ["autocontrast", "equalize", "invert"] { c.append(Case(name: name, argument: 0, resample: .nearest)) }
        for t in [0.0, 77, 128, 230, 256] { c.append(Case(name: "solarize", argument: t, resample: .nearest)) }
        for a in [0.0, 33, 110] { c.append(Case(name: "solarize_add", argument: a, resample: .nearest)) }
        for b in [1.0, 4, 6, 7] { c.append(Case(name: "posterize", argument: b, resample: .nearest)) }
        for f in [0.1, 0.46, 0.999, 1.0, 1.37, 1.9] {
            for name in ["color", "contrast", "brightness", "sharpness"] { c.append(Case(name: name, argument: f, resample: .nearest)) }
        }
        for r in PillowOps.Resample.allCases {
            for d in [-29.7, -3.0, 0.0, 12.5, 30.0] { c.append(Case(name: "rotate", argument: d, resample: r)) }
            for s in [-0.3, 0.17, 0.0213] {
                c.append(Case(name: "shear_x", argument: s, resample: r))
                c.append(Case(name: "shear_y", argument: s, resample: r))
            }
            for p in [-0.45, 0.2, 0.0333] { c.append(Case(name: "translate_y_rel", argument: p, resample: r)) }
        }
        return c
    }()

    /// The official ops written with Pillow, as `auto_augment_tf.py` calls them.
    static let pillowScript = #"""
        import json, sys
        from PIL import Image, ImageEnhance, ImageOps
        spec = json.load(open(sys.argv[1]))
        fill = tuple(spec["fill"])
        out = open(sys.argv[2], "wb")
        for im_spec in spec["images"]:
            base = Image.frombytes("RGB", (im_spec["w"], im_spec["h"]), open(im_spec["path"], "rb").read())
            for c in spec["cases"]:
                n, a, r = c["name"], c["argument"], c["resample"]
                geo = dict(resample=r, fillcolor=fill)
                if n == "autocontrast": im = ImageOps.autocontrast(base)
                elif n == "equalize": im = ImageOps.equalize(base)
                elif n == "invert": im = ImageOps.invert(base)
                elif n == "solarize": im = ImageOps.solarize(base, int(a))
                elif n == "solarize_add":
                    lut = [min(255, i + int(a)) if i < 128 else i for i in range(256)]
                    im = base.point(lut * 3)
                elif n == "posterize": im = ImageOps.posterize(base, int(a))
                elif n == "color": im = ImageEnhance.Color(base).enhance(a)
                elif n == "contrast": im = ImageEnhance.Contrast(base).enhance(a)
                elif n == "brightness": im = ImageEnhance.Brightness(base).enhance(a)
                elif n == "sharpness": im = ImageEnhance.Sharpness(base).enhance(a)
                elif n == "rotate": im = base.rotate(a, **geo)
                elif n == "shear_x": im = base.transform(base.size, Image.AFFINE, (1, a, 0, 0, 1, 0), **geo)
                elif n == "shear_y": im = base.transform(base.size, Image.AFFINE, (1, 0, 0, a, 1, 0), **geo)
                elif n == "translate_y_rel": im = base.transform(base.size, Image.AFFINE, (1, 0, 0, 0, 1, a * base.size[1]), **geo)
                else: raise SystemExit("unknown case " + n)
                out.write(im.tobytes())
        """#

    @Test(.requires(.pillow))
    func everyOperationEqualsPillow() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoaugment-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var imageSpecs: [[String: Any]] = []
        for (i, im) in Self.images.enumerated() {
            let path = dir.appendingPathComponent("\(i).rgb").path
            try Data(im.pixels).write(to: URL(fileURLWithPath: path))
            imageSpecs.append(["path": path, "w": im.width, "h": im.height])
        }
        let cases = Self.cases.map { ["name": $0.name, "argument": $0.argument, "resample": $0.resample.rawValue] as [String: Any] }
        let f = AutoAugment.fill
        let spec: [String: Any] = ["images": imageSpecs, "cases": cases, "fill": [f.0, f.1, f.2]]
        let specPath = dir.appendingPathComponent("spec.json").path
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specPath))
        let outPath = dir.appendingPathComponent("out.rgb").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", Self.pillowScript, specPath, outPath]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "\(message)")
        let reference = try readWholeFile(outPath)
        var offset = 0
        var checked = 0
        for im in Self.images {
            for c in Self.cases {
                let n = im.pixels.count
                let theirs = Array(reference[offset..<(offset + n)])
                offset += n
                let ours = c.apply(im).pixels
                let differing = zip(ours, theirs).filter { $0 != $1 }.count
                #expect(differing == 0, "\(c) on \(im.width)x\(im.height): \(differing) of \(n) bytes differ from Pillow")
                checked += 1
            }
        }
        #expect(offset == reference.count && checked == Self.images.count * Self.cases.count)
    }

    /// Every geometric case moves pixels and fills the border (so the comparison above
    /// is not between two identities), and the enhancements change the image.
    @Test func casesAreNotIdentities() {
        let photo = Self.images[0]
        for c in Self.cases where !(c.argument == 0 && ["rotate", "solarize_add"].contains(c.name))
            && !(c.argument == 1 && c.name != "posterize") && !(c.name == "solarize" && c.argument == 256) {
            #expect(c.apply(photo) != photo, "\(c) left the image unchanged")
        }
    }

    @Test func policyIsTheOfficialTable() {
        let v0 = AutoAugment.policyV0
        #expect(v0.count == 25 && v0.allSatisfy { $0.count == 2 })
        #expect(v0[0] == [.init(operation: .equalize, probability: 0.8, magnitude: 1), .init(operation: .shearY, probability: 0.8, magnitude: 4)])
        #expect(v0[15] == [.init(operation: .rotate, probability: 1.0, magnitude: 7), .init(operation: .translateYRel, probability: 0.8, magnitude: 9)])
        #expect(v0[24] == [.init(operation: .color, probability: 0.8, magnitude: 6), .init(operation: .rotate, probability: 0.4, magnitude: 5)])
        // The operation counts of policy v0.
        var counts: [AutoAugment.Operation: Int] = [:]
        for sub in v0 { for e in sub { counts[e.operation, default: 0] += 1 } }
        #expect(counts == [.equalize: 12, .shearY: 4, .color: 9, .rotate: 7, .solarize: 8, .solarizeAdd: 2, .shearX: 2,
                           .invert: 1, .posterize: 2, .autoContrast: 2, .translateYRel: 1])
    }

    /// Fixed draws: an op applies exactly when its uniform <= its probability; the
    /// magnitude is m + 0.5 z clipped to [0, 10], mapped by the official level function.
    @Test func planFollowsTheTableForFixedDraws() {
        func draw(_ sub: Int, u: [Double], z: [Double], neg: [Bool] = [false, false], r: [PillowOps.Resample] = [.bilinear, .bicubic]) -> AutoAugment.Draw {
            AutoAugment.Draw(subPolicy: sub, uniforms: u, normals: z, negate: neg, resample: r)
        }
        // Sub-policy 15: Rotate 1.0 m7, TranslateYRel 0.8 m9.
        var plan = AutoAugment.plan(draw(15, u: [0.999, 0.8], z: [0, 3], neg: [true, false]))
        #expect(plan.map(\.operation) == [.rotate, .translateYRel])
        #expect(abs(plan[0].argument - -21.0) < 1e-12 && plan[0].resample == .bilinear)
        #expect(abs(plan[1].argument - 0.45) < 1e-12 && plan[1].resample == .bicubic, "m = 9 + 1.5 clipped at 10")
        plan = AutoAugment.plan(draw(15, u: [0.2, 0.8000001], z: [-20, 0]))
        #expect(plan.map(\.operation) == [.rotate] && plan[0].argument == 0, "magnitude clipped at 0; second op skipped")
        // Sub-policy 12: Posterize 0.4 m6 -> int(m/10*4)+4 bits, AutoContrast 0.4.
        plan = AutoAugment.plan(draw(12, u: [0.4, 0.41], z: [-0.4, 0]))
        #expect(plan.count == 1 && plan[0].operation == .posterize && plan[0].argument == 6, "m 5.8 -> 6 bits")
        // Sub-policy 3: Solarize 0.8 m3 -> int(m/10*256); Equalize 0.4.
        plan = AutoAugment.plan(draw(3, u: [0, 0], z: [0.5, 0]))
        #expect(plan.map(\.operation) == [.solarize, .equalize] && plan[0].argument == 83)
        // Sub-policy 6: SolarizeAdd m3 -> int(m/10*110); 1: Color m9 -> m/10*1.8+0.1.
        plan = AutoAugment.plan(draw(6, u: [0.9, 0.1], z: [0, 0]))
        #expect(plan.count == 1 && plan[0].operation == .solarizeAdd && plan[0].argument == 33)
        plan = AutoAugment.plan(draw(1, u: [0.1, 0.9], z: [0, 0]))
        #expect(plan.count == 1 && abs(plan[0].argument - 1.72) < 1e-12)
        // Shears: m/10*0.3, negated on request; unsigned ops ignore the sign.
        plan = AutoAugment.plan(draw(7, u: [0.1, 0.1], z: [0, 0], neg: [true, true]))
        #expect(abs(plan[0].argument - -0.27) < 1e-12 && abs(plan[1].argument - -24) < 1e-12)
        plan = AutoAugment.plan(draw(1, u: [0.1, 0.1], z: [0, 0], neg: [true, true]))
        #expect(plan[0].argument > 0)
        // Probability 0 never applies (sub-policy 16's ShearX, 19's second Equalize).
        #expect(AutoAugment.plan(draw(16, u: [1e-9, 0.9], z: [0, 0])).isEmpty)
    }

    /// Random draws: sub-policies uniform, ops applied at their probabilities, the
    /// magnitude's noise N(0, 0.5), filters uniform over the three.
    @Test func drawsHaveTheOfficialDistribution() {
        var rng = SeededRandom(seed: 2026)
        let n = 60_000
        var perSub = [Int](repeating: 0, count: 25)
        var applied = [[Int]](repeating: [0, 0], count: 25)
        var filters = [PillowOps.Resample: Int]()
        var sum = 0.0, sumSq = 0.0
        for _ in 0..<n {
            let d = AutoAugment.Draw(&rng)
            perSub[d.subPolicy] += 1
            for k in 0..<2 where d.uniforms[k] <= AutoAugment.policyV0[d.subPolicy][k].probability { applied[d.subPolicy][k] += 1 }
            filters[d.resample[0], default: 0] += 1
            sum += d.normals[0]
            sumSq += d.normals[0] * d.normals[0]
        }
        for s in 0..<25 {
            #expect(abs(Double(perSub[s]) / Double(n) - 0.04) < 0.004, "sub-policy \(s): \(perSub[s])")
            for k in 0..<2 {
                let p = AutoAugment.policyV0[s][k].probability
                #expect(abs(Double(applied[s][k]) / Double(perSub[s]) - p) < 0.05, "sub-policy \(s) op \(k)")
            }
        }
        #expect(filters.count == 3 && filters.values.allSatisfy { abs(Double($0) / Double(n) - 1.0 / 3) < 0.01 })
        let mean = sum / Double(n), sd = (sumSq / Double(n) - mean * mean).squareRoot()
        #expect(abs(mean) < 0.02 && abs(sd - 1) < 0.02)
    }

    /// Through the loader (exact epochs: every position has its own random stream, so the
    /// crop and flip are drawn exactly as `.train` draws them): each image is the `.train`
    /// image when its plan is empty, and otherwise exactly the policy applied to the 8-bit
    /// `.train` crop; the same seed gives the same batch; float shards are refused.
    @Test func loaderAppliesThePolicyToTheTrainCrop() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aa-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 32, side = 24, res = 20
        var images = [UInt8]()
        for i in 0..<n { images += Photo.make(width: side, height: side, seed: UInt64(i)) }
        var shard = TensorFile(metadata: [:])
        shard["images"] = Tensor(images, shape: [n, side, side, 3])
        shard["labels"] = Tensor((0..<n).map { Int32($0 % 3) }, shape: [n])
        try shard.write(to: dir.appendingPathComponent("s.safetensors").path)
        let catalog = try ShardCatalog(source: .directory(dir.path))
        func loader(_ a: Augmentation) throws -> BatchLoader {
            try BatchLoader(epochsOf: catalog, batchSize: n, resolution: res, augmentation: a, seed: 4, windowImages: 1 << 20, startStep: 0)
        }
        let plainBatch = try #require(try loader(.train).next())
        let prepared = try #require(try loader(.trainAutoAugment).nextPrepared())
        let aa = BatchLoader.render(prepared, resolution: res, augmentation: .trainAutoAugment)
        let again = try #require(try loader(.trainAutoAugment).next())
        #expect(aa.images == again.images && aa.labels == plainBatch.labels)
        let per = res * res * 3
        let m = ImageNetNormalization.mean, inv = ImageNetNormalization.std.map { 1 / $0 }
        var unchanged = 0, applied = 0
        for i in 0..<n {
            let draw = try #require(prepared.draws[i].autoAugment)
            let train = Array(plainBatch.images[(i * per)..<((i + 1) * per)])
            // Back to the 8-bit crop: the normalisation of exact bytes inverts exactly after rounding.
            let bytes = (0..<per).map { UInt8(min(max((train[$0] / inv[$0 % 3] + m[$0 % 3]).rounded(), 0), 255)) }
            let expected = AutoAugment.apply(draw, to: RGBImage(width: res, height: res, pixels: bytes)).pixels
            let want = (0..<per).map { (Float(expected[$0]) - m[$0 % 3]) * inv[$0 % 3] }
            let got = Array(aa.images[(i * per)..<((i + 1) * per)])
            #expect(got == want, "image \(i): plan \(AutoAugment.plan(draw))")
            if AutoAugment.plan(draw).isEmpty { unchanged += 1; #expect(got == train) } else { applied += 1 }
        }
        #expect(applied > 0 && unchanged + applied == n, "\(applied) images augmented")
        let floatDir = dir.appendingPathComponent("float")
        try FileManager.default.createDirectory(at: floatDir, withIntermediateDirectories: true)
        var floatShard = TensorFile(metadata: [:])
        floatShard["images"] = Tensor([Float](repeating: 0.5, count: 2 * 8 * 8 * 3), shape: [2, 8, 8, 3])
        floatShard["labels"] = Tensor([Int32(0), 1], shape: [2])
        try floatShard.write(to: floatDir.appendingPathComponent("f.safetensors").path)
        // Refused in both orders, naming the shard.
        let buffered = try BatchLoader(source: .directory(floatDir.path), batchSize: 2, resolution: 8, augmentation: .trainAutoAugment, seed: 1, shuffleBuffer: 1, epochs: 1)
        let epochs = try BatchLoader(epochsOf: try ShardCatalog(source: .directory(floatDir.path)), batchSize: 2, resolution: 8,
                                     augmentation: .trainAutoAugment, seed: 1, windowImages: 1 << 20, startStep: 0)
        for l in [buffered, epochs] {
            #expect {
                _ = try l.next()
            } throws: { error in
                "\(error)".contains("float32") && "\(error)".contains("auto-augment-tf") && "\(error)".contains("f.safetensors")
            }
        }
    }
}
