import System
import DataPipeline
import FileFormats
import Foundation
import NASCore
import Supernet
import Testing
@testable import Training

/// Library-level checks of accuracy estimation on small shards written here.
@Suite("Estimation", .serialized)
struct EstimationTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let arch = Arch(resolution: 24, width: [16, 8, 16, 24, 32, 48, 64, 80, 256], depth: [1, 2, 2, 2, 2, 2, 1],
                           kernelSize: [3, 3, 3, 3, 3, 3, 3], expandRatio: [1, 3, 3, 3, 3, 3, 3])

    struct Fixture {
        let dir: String
        let space: SearchSpace
        let checkpoint: Checkpoint
        init() throws {
            dir = NSTemporaryDirectory() + "estimation-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir + "/cal", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/val", withIntermediateDirectories: true)
            try Fixture.shard(dir + "/cal/a.safetensors", count: 7, seed: 1)
            try Fixture.shard(dir + "/cal/b.safetensors", count: 9, seed: 2)
            try Fixture.shard(dir + "/val/a.safetensors", count: 10, seed: 3)
            space = try SearchSpace(contentsOf: EstimationTests.repo + "/pipelines/spaces/tiny.json")
            checkpoint = Checkpoint(space: space, weights: SupernetInitializer.initialWeights(space: space, seed: 7))
        }

        static func shard(_ path: String, count: Int, seed: UInt64) throws {
            var rng = SeededRandom(seed: seed)
            let pixels = (0..<(count * 12 * 12 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 7) }
            let labels = (0..<count).map { _ in Int32(rng.next() % 10) }
            var file = TensorFile()
            file["images"] = Tensor(pixels, shape: [count, 12, 12, 3])
            file["labels"] = Tensor(labels, shape: [count])
            try file.write(to: path, compressed: false)
        }
    }

    /// Recalibrated running statistics of the stem BN are the cumulative
    /// average, over calibration batches, of each batch's mean and unbiased
    /// variance of the stem convolution's output (official recalibration:
    /// PyTorch BN with momentum None in train mode).
    @Test func recalibrationIsCumulativeAverageOfBatchMeanAndUnbiasedVariance() throws {
        let f = try Fixture()
        let data = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 6, calibBatches: 2, valLimit: nil)
        #expect(data.calibration.map(\.count) == [6, 6])
        let estimator = AccuracyEstimator(checkpoint: f.checkpoint, data: data, jobs: 1, workersPerJob: 1)
        let stats = estimator.recalibratedStatistics(EstimationTests.arch)

        let arch = EstimationTests.arch, r = arch.resolution, c0 = arch.width[0]
        let layout = SupernetLayout(space: f.space)
        let wEntry = try #require(layout["first_conv.conv.conv.weight"])
        let w = try #require(f.checkpoint.weights.values(of: "first_conv.conv.conv.weight"))
        let cinMax = wEntry.shape[1], kMax = wEntry.shape[2]
        #expect(f.space.firstConv.stride == 1 && kMax == 3)
        var meanSum = [Double](repeating: 0, count: c0), varSum = [Double](repeating: 0, count: c0)
        for p in data.calibration {
            let b = BatchLoader.render(p, resolution: r, augmentation: .eval)
            // Naive 3x3 convolution, stride 1, zero padding 1, NHWC input, OIHW weights.
            var out = [[Double]](repeating: [], count: c0)
            for n in 0..<b.count {
                for y in 0..<r {
                    for x in 0..<r {
                        for o in 0..<c0 {
                            var s = 0.0
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let iy = y + ky - 1, ix = x + kx - 1
                                    guard iy >= 0 && iy < r && ix >= 0 && ix < r else { continue }
                                    for i in 0..<3 {
                                        s += Double(b.images[((n * r + iy) * r + ix) * 3 + i]) * Double(w[((o * cinMax + i) * kMax + ky) * kMax + kx])
                                    }
                                }
                            }
                            out[o].append(s)
                        }
                    }
                }
            }
            for o in 0..<c0 {
                let m = out[o].reduce(0, +) / Double(out[o].count)
                let v = out[o].reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(out[o].count - 1)
                meanSum[o] += m
                varSum[o] += v
            }
        }
        let meanEntry = try #require(layout["first_conv.bn.bn.running_mean"])
        let varEntry = try #require(layout["first_conv.bn.bn.running_var"])
        let k = Double(data.calibration.count)
        for o in 0..<c0 {
            let m = Double(stats[meanEntry.offset + o]), v = Double(stats[varEntry.offset + o])
            #expect(abs(m - meanSum[o] / k) <= 1e-4 * max(1, abs(meanSum[o] / k)), "mean of channel \(o)")
            #expect(abs(v - varSum[o] / k) <= 1e-4 * max(1, varSum[o] / k), "variance of channel \(o)")
        }
    }

    /// The digests of the cache key cover exactly the images used, as stored: per image
    /// the label (int32, little-endian) then the pixel bytes, in file order, computed here
    /// from the shard files themselves. Calibration takes whole batches (12 of the 16
    /// images, across both files); validation stops at `valLimit` within a batch.
    @Test func digestsCoverTheImagesUsedAsStored() throws {
        let f = try Fixture()
        func expected(_ files: [String], images: Int) throws -> String {
            var hash = SHA256(), left = images
            for file in files {
                let t = try TensorFile(contentsOf: file)
                let labels = try #require(t["labels"]).ints(), pixels = try #require(t["images"]).bytes
                let per = pixels.count / labels.count
                for i in 0..<min(left, labels.count) {
                    var label = Int32(labels[i]).littleEndian
                    withUnsafeBytes(of: &label) { hash.update($0) }
                    pixels[(i * per)..<((i + 1) * per)].withUnsafeBytes { hash.update($0) }
                }
                left -= min(left, labels.count)
            }
            #expect(left == 0)
            return SHA256.hex(hash.finalize())
        }
        let data = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 4, calibBatches: 3, valLimit: 7)
        #expect(data.calibrationImages == 12 && data.validationImages == 7)
        #expect(data.calibrationDigest == (try expected([f.dir + "/cal/a.safetensors", f.dir + "/cal/b.safetensors"], images: 12)))
        #expect(data.validationDigest == (try expected([f.dir + "/val/a.safetensors"], images: 7)))
        let eight = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 4, calibBatches: 3, valLimit: 8)
        #expect(eight.validationDigest == (try expected([f.dir + "/val/a.safetensors"], images: 8)))
        #expect(eight.validationDigest != data.validationDigest && eight.calibrationDigest == data.calibrationDigest)
    }

    /// Parallel jobs give the same results as one job, in input order.
    @Test func jobsDoNotChangeResults() throws {
        let f = try Fixture()
        let data = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 4, calibBatches: 2, valLimit: 7)
        #expect(data.validationImages == 7)
        let archs = [EstimationTests.arch, f.space.minArch, EstimationTests.arch]
        let one = AccuracyEstimator(checkpoint: f.checkpoint, data: data, jobs: 1, workersPerJob: 1)
        let expected = archs.map { one.evaluate($0) }
        #expect(expected[0] == expected[2] && expected[0].images == 7)
        let two = AccuracyEstimator(checkpoint: f.checkpoint, data: data, jobs: 2, workersPerJob: 1)
        let got = Collected()
        let pool = OrderedWorkQueue<Arch, SubnetAccuracy>(jobs: 2, work: { a, j in two.evaluate(a, job: j) }, deliver: { seq, acc in got.append(seq, acc) })
        pool.submit(archs[0])
        pool.submit(ready: expected[1])
        pool.submit(archs[2])
        pool.finish()
        #expect(got.items.map(\.0) == [0, 1, 2])
        #expect(got.items.map(\.1) == expected)
    }

    /// Sets too large for the render cache are rendered batch by batch as each job uses
    /// them (ImageNet at 224 px); the results are those of the kept batches.
    @Test func streamedRenderingGivesTheKeptResults() throws {
        let f = try Fixture()
        let data = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 4, calibBatches: 3, valLimit: 7)
        let archs = [EstimationTests.arch, f.space.minArch, f.space.maxArch]
        let kept = AccuracyEstimator(checkpoint: f.checkpoint, data: data, jobs: 1, workersPerJob: 1)
        let streamed = AccuracyEstimator(checkpoint: f.checkpoint, data: data, jobs: 2, workersPerJob: 1, cacheBytes: 0)
        for a in archs {
            let expected = kept.evaluate(a)
            #expect(expected.images == 7)
            #expect(streamed.evaluate(a, job: 1) == expected)
            #expect(streamed.recalibratedStatistics(a) == kept.recalibratedStatistics(a))
        }
    }

    /// The render cache shared by estimate-acc's jobs and train-supernet's evaluator:
    /// the most recent resolutions within the budget (the newest always), a hit moved to
    /// the front, and a resolution too large for the budget streamed, never kept, with
    /// the same pixels and labels as when kept.
    @Test func renderedSetsKeepTheNewestResolutionsWithinTheBudget() throws {
        let f = try Fixture()
        let data = try EstimationData(calibration: f.dir + "/cal", validation: f.dir + "/val", batchSize: 4, calibBatches: 3, valLimit: 7)
        func bytes(_ r: Int) -> Int { (12 + 7) * r * r * 3 * 4 }
        func sets(_ budget: Int) -> RenderedSets {
            RenderedSets(calibration: data.calibration, validation: data.validation, augmentation: .eval,
                         validationLimit: data.validationImages, cacheBytes: budget)
        }
        let both = sets(bytes(8) + bytes(10))
        _ = both.batches(resolution: 8)
        _ = both.batches(resolution: 10)
        #expect(both.keptResolutions == [10, 8])
        _ = both.batches(resolution: 8)
        #expect(both.keptResolutions == [8, 10])
        _ = both.batches(resolution: 9)
        #expect(both.keptResolutions == [9, 8])

        let small = sets(bytes(8))
        let streamed = small.batches(resolution: 10)
        #expect(small.keptResolutions.isEmpty)
        let kept = both.batches(resolution: 10)
        #expect(both.keptResolutions.first == 10)
        for (s, k) in [(streamed.calibration, kept.calibration), (streamed.validation, kept.validation)] {
            let a = s.map { ($0.images, $0.labels, $0.resolution) }, b = k.map { ($0.images, $0.labels, $0.resolution) }
            #expect(a.count == b.count)
            for (x, y) in zip(a, b) { #expect(x.0 == y.0 && x.1 == y.1 && x.2 == y.2) }
        }
        #expect(kept.validation.reduce(0) { $0 + $1.count } == 7)
        #expect(kept.calibration.map(\.count) == [4, 4, 4])
    }

    final class Collected: @unchecked Sendable {
        var items: [(Int, SubnetAccuracy)] = []
        func append(_ s: Int, _ a: SubnetAccuracy) { items.append((s, a)) }
    }

    @Test func cacheKeepsWholeRecordsAndSkipsTornLines() throws {
        let f = try Fixture()
        let path = f.dir + "/cache.jsonl"
        let settings: JSONValue = .object([("val_images", JSONValue(7))])
        let acc = SubnetAccuracy(acc1: 12.5, acc5: 50, loss: 2.25, images: 8)
        do {
            let c = try EstimationCache(path: path)
            try c.store(acc, checkpoint: "abc", settings: settings, arch: EstimationTests.arch)
        }
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data(#"{"checkpoint_sha256":"abc","settings""#.utf8))
        try h.close()
        let c = try EstimationCache(path: path)
        #expect(c.skippedLines == 1)
        #expect(c.lookup(checkpoint: "abc", settings: settings, arch: EstimationTests.arch) == acc)
        #expect(c.lookup(checkpoint: "abd", settings: settings, arch: EstimationTests.arch) == nil)
        #expect(c.lookup(checkpoint: "abc", settings: .object([("val_images", JSONValue(8))]), arch: EstimationTests.arch) == nil)
    }
}
