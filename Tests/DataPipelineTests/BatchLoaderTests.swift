@testable import DataPipeline
import System
import FileFormats
import Foundation
import NASCore
import Testing

/// Shards with recognisable images: image k is filled with value 10 * k + channel.
struct ShardFixture {
    let dir: URL
    let images: Int
    let size: Int

    init(images: Int, perShard: Int, size: Int = 8) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        self.images = images
        self.size = size
        var k = 0, s = 0
        while k < images {
            let n = min(perShard, images - k)
            var px: [UInt8] = []
            for j in 0..<n { for _ in 0..<(size * size) { for c in 0..<3 { px.append(UInt8(10 * (k + j) + c)) } } }
            // Image i has label i: the class list names one class per image.
            let names = (0..<images).map { "\"c\($0)\"" }.joined(separator: ",")
            var f = TensorFile(metadata: ["split": "train", "size": String(size), "classes": "[\(names)]"])
            f["images"] = Tensor(px, shape: [n, size, size, 3])
            f["labels"] = Tensor((k..<(k + n)).map { Int32($0) }, shape: [n])
            try f.write(to: dir.appendingPathComponent(String(format: "train-%05d.safetensors.lz4", s)).path)
            k += n
            s += 1
        }
    }

    var source: ShardSource { .directory(dir.path) }
    func remove() { try? FileManager.default.removeItem(at: dir) }
}

@Suite("Batch loading")
struct BatchLoaderTests {
    @Test func noneAugmentationNormalisesWithImageNetMeanStd() throws {
        let fx = try ShardFixture(images: 5, perShard: 2)
        defer { fx.remove() }
        let loader = try BatchLoader(source: fx.source, batchSize: 2, resolution: 8, augmentation: .none, seed: 0, epochs: 1)
        var labels: [Int32] = []
        while let b = try loader.next() {
            #expect(b.images.count == b.count * 8 * 8 * 3)
            for i in 0..<b.count {
                for c in 0..<3 {
                    let v = Float(10 * Int(b.labels[i]) + c)
                    let expected = (v - ImageNetNormalization.mean[c]) / ImageNetNormalization.std[c]
                    #expect(abs(b.images[i * 192 + 5 * 3 + c] - expected) < 1e-5)
                }
            }
            labels += b.labels
        }
        #expect(labels == [0, 1, 2, 3, 4])
        #expect(loader.classes == (0..<fx.images).map { "c\($0)" })
    }

    /// Batches rendered as they are iterated equal the batches rendered to keep, stop at
    /// the image limit (cutting a batch), reuse one allocation when the caller lets each
    /// batch go, and never overwrite a batch the caller still holds.
    @Test func renderedBatchesStreamIntoOneBuffer() throws {
        let fx = try ShardFixture(images: 11, perShard: 4)
        defer { fx.remove() }
        let loader = try BatchLoader(source: fx.source, batchSize: 3, resolution: 8, augmentation: .eval, seed: 0, epochs: 1)
        var prepared: [BatchLoader.PreparedBatch] = []
        while let p = try loader.nextPrepared() { prepared.append(p) }
        #expect(prepared.map(\.count) == [3, 3, 3, 2])
        #expect(prepared.allSatisfy { $0.rendered == nil }, "batches taken unrendered are not rendered ahead either")
        // Batches taken rendered are rendered ahead (the first one, asked for cold, is not).
        let rendering = try BatchLoader(source: fx.source, batchSize: 3, resolution: 8, augmentation: .eval, seed: 0, epochs: 1)
        _ = try rendering.next()
        #expect(try rendering.nextPrepared()?.rendered?.resolution == 8)
        let batches = RenderedBatches(prepared, resolution: 6, augmentation: .eval, limit: 8)
        #expect(batches.imageCount == 8)
        let kept = batches.keptBatches()
        #expect(kept.map(\.count) == [3, 3, 2] && kept.map(\.labels) == [[0, 1, 2], [3, 4, 5], [6, 7]])
        #expect(kept[2].images == Array(BatchLoader.render(prepared[2], resolution: 6, augmentation: .eval).images.prefix(2 * 6 * 6 * 3)))
        var addresses = Set<UnsafeRawPointer?>()
        var streamed: [[Float]] = []
        for b in batches {
            #expect(b.images.count == b.count * 6 * 6 * 3)
            addresses.insert(b.images.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) })
            streamed.append(b.images.map { $0 })  // a copy: holding b.images itself would keep the buffer
        }
        #expect(streamed == kept.map(\.images))
        #expect(addresses.count == 1, "a batch that was let go is rendered over, not reallocated")
        let held = Array(batches)
        #expect(held.map(\.images) == kept.map(\.images), "held batches keep their pixels")
    }

    @Test func shufflingIsAPermutationAndFixedBySeed() throws {
        let fx = try ShardFixture(images: 23, perShard: 5)
        defer { fx.remove() }
        func epoch(seed: UInt64, aug: Augmentation) throws -> ([Int32], [Float]) {
            let l = try BatchLoader(source: fx.source, batchSize: 4, resolution: 6, augmentation: aug, seed: seed, shuffleBuffer: 8, epochs: 1)
            var labels: [Int32] = [], px: [Float] = []
            while let b = try l.next() { labels += b.labels; px += b.images }
            return (labels, px)
        }
        let a = try epoch(seed: 1, aug: .train), b = try epoch(seed: 1, aug: .train), c = try epoch(seed: 2, aug: .train)
        #expect(a.0.sorted() == (0..<23).map { Int32($0) })
        #expect(a.0 != (0..<23).map { Int32($0) })
        #expect(a.0 == b.0 && a.1 == b.1)
        #expect(a.0 != c.0)
    }

    @Test func resolutionCanChangePerBatchAndDropLastWorks() throws {
        let fx = try ShardFixture(images: 7, perShard: 3)
        defer { fx.remove() }
        let l = try BatchLoader(source: fx.source, batchSize: 3, resolution: 8, augmentation: .eval, seed: 0, epochs: 1, dropLast: true)
        let b1 = try l.next(resolution: 5)
        let b2 = try l.next(resolution: 12)
        #expect(b1?.images.count == 3 * 5 * 5 * 3)
        #expect(b2?.images.count == 3 * 12 * 12 * 3)
        #expect(try l.next() == nil)
        // Files repeat for ever without `epochs`.
        let forever = try BatchLoader(source: fx.source, batchSize: 4, resolution: 4, augmentation: .none, seed: 0)
        for _ in 0..<5 { #expect(try forever.next()?.count == 4) }
    }

    @Test func padCropShiftsWithZerosAndFlips() throws {
        let px: [UInt8] = (0..<(4 * 4 * 3)).map { UInt8($0) }
        let s = BatchLoader.padCropShift(px, width: 4, height: 4, dx: 1, dy: -1, flip: false)
        // Output (x, y) = input (x + 1, y - 1); row 0 and column 3 are padding.
        #expect(Array(s[0..<12]) == [UInt8](repeating: 0, count: 12))
        #expect(s[(1 * 4 + 0) * 3] == px[(0 * 4 + 1) * 3])
        #expect(s[(1 * 4 + 3) * 3] == 0)
        let f = BatchLoader.padCropShift(px, width: 4, height: 4, dx: 0, dy: 0, flip: true)
        #expect(f[0] == px[3 * 3])
        let fx = try ShardFixture(images: 4, perShard: 4)
        defer { fx.remove() }
        let l = try BatchLoader(source: fx.source, batchSize: 4, resolution: 8, augmentation: .padCrop(pad: 4), seed: 3, epochs: 1)
        let b = try #require(try l.next())
        let zero = (0..<3).map { (0 - ImageNetNormalization.mean[$0]) / ImageNetNormalization.std[$0] }
        for i in 0..<b.count {
            for p in 0..<64 {
                let v = b.images[i * 192 + p * 3]
                let own = (Float(10 * Int(b.labels[i])) - ImageNetNormalization.mean[0]) / ImageNetNormalization.std[0]
                #expect(abs(v - own) < 1e-4 || abs(v - zero[0]) < 1e-4)
            }
        }
    }

    @Test func streamSourceReadsFramesBackToBack() throws {
        let fx = try ShardFixture(images: 5, perShard: 2)
        defer { fx.remove() }
        let files = try #require(try fx.source.shardFiles())
        let stream = fx.dir.appendingPathComponent("stream.bin")
        try Data(try files.flatMap { try readWholeFile($0) }).write(to: stream)
        let fd = open(stream.path, O_RDONLY)
        defer { close(fd) }
        let l = try BatchLoader(source: .stream(fileDescriptor: fd, name: "stream"), batchSize: 3, resolution: 8, augmentation: .none, seed: 0)
        #expect(try l.next()?.labels == [0, 1, 2])
        #expect(try l.next()?.labels == [3, 4])
        #expect(try l.next() == nil)
    }

    @Test(arguments: [0 as UInt64, 1, 2, 3])
    func randomResizedCropStaysInsideAndFallsBack(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for _ in 0..<200 {
            let b = AugmentationDraws.randomResizedCrop(width: 50, height: 40, rng: &rng)
            #expect(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= 50 && b.y1 <= 40 && b.x1 > b.x0 && b.y1 > b.y0)
            let area = (b.x1 - b.x0) * (b.y1 - b.y0) / 2000
            #expect(area >= 0.07 && area <= 1)
        }
        // A 1000 x 2 strip never fits a 3/4..4/3 crop: the fallback is the centre crop with ratio 4/3,
        let f = AugmentationDraws.randomResizedCrop(width: 1000, height: 2, rng: &rng)
        #expect(f == PixelBox(x0: 498, y0: 0, x1: 501, y1: 2))  // w = round(2 * 4/3) = 3, j = (1000 - 3) // 2
    }

    @Test func validationLabelsFromLocCsvAndGroundTruth() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("labels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("loc.csv").path, gt = dir.appendingPathComponent("gt.txt").path, syn = dir.appendingPathComponent("syn.txt").path
        try Data("ImageId,PredictionString\r\nILSVRC2012_val_00000007,n02 1 2 3 4\r\n".utf8).write(to: URL(fileURLWithPath: csv))
        try Data("3\n1\n".utf8).write(to: URL(fileURLWithPath: gt))
        try Data("n10 a\nn11 b\nn12 c\n".utf8).write(to: URL(fileURLWithPath: syn))
        let a = try ValidationLabels(files: [csv])
        #expect(a.wnid(forFileName: "ILSVRC2012_val_00000007.JPEG") == "n02")
        #expect(a.wnid(forFileName: "x.JPEG") == nil)
        let b = try ValidationLabels(files: [gt, syn])
        #expect(b.wnid(forFileName: "ILSVRC2012_val_00000001.JPEG") == "n12")
        #expect(b.wnid(forFileName: "ILSVRC2012_val_00000002.JPEG") == "n10")
        #expect(b.classNames == ["n10", "n11", "n12"])
        #expect(throws: PackError.self) { try ValidationLabels(files: [gt]) }
    }
}
