@testable import DataPipeline
import FileFormats
import Foundation
import NASCore
import Testing

/// The exact-epoch order: every image once per epoch in a seeded order, the same
/// batches however a run is cut into resumes or split over ranks, classes mixed.
@Suite("Exact epochs")
struct EpochOrderTests {
    /// Shards of the given sizes; image i has label i (ShardFixture's recognisable images).
    static func fixture(_ sizes: [Int]) throws -> (ShardFixture, ShardCatalog) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("epochs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var k = 0
        for (s, n) in sizes.enumerated() {
            var f = TensorFile(metadata: [:])
            f["images"] = Tensor((0..<(n * 4 * 4 * 3)).map { UInt8(truncatingIfNeeded: $0 / 48 + k) }, shape: [n, 4, 4, 3])
            f["labels"] = Tensor((k..<(k + n)).map { Int32($0) }, shape: [n])
            try f.write(to: dir.appendingPathComponent(String(format: "train-%05d.safetensors.lz4", s)).path)
            k += n
        }
        let fx = ShardFixture(existing: dir, images: k, size: 4)
        return (fx, try ShardCatalog(source: fx.source))
    }

    static func loader(_ catalog: ShardCatalog, batch: Int, window: Int = 1 << 30, start: Int = 0, rank: Int = 0, ranks: Int = 1,
                       augmentation: Augmentation = .none, seed: UInt64 = 7) throws -> BatchLoader {
        try BatchLoader(epochsOf: catalog, batchSize: batch, resolution: 4, augmentation: augmentation, seed: seed,
                        windowImages: window, startStep: start, rank: rank, ranks: ranks)
    }

    @Test(arguments: [1 << 30, 30])
    func everyImageOncePerEpochInANewOrder(window: Int) throws {
        let (fx, catalog) = try Self.fixture([10, 25, 3, 40, 25])
        defer { fx.remove() }
        #expect(catalog.imageCount == 103 && catalog.entries.map(\.images) == [10, 25, 3, 40, 25])
        let l = try Self.loader(catalog, batch: 8, window: window)
        let order = try #require(l.epochOrder)
        #expect(order.stepsPerEpoch == 12)
        if window == 30 {
            // Windows of at most 40 images (the largest shard), covering the epoch.
            let w = order.windows(epoch: 0)
            #expect(w.count > 1 && w.allSatisfy { $0.count <= 40 } && w.map(\.count).reduce(0, +) == 103)
            #expect(Set(w.flatMap(\.shards)) == Set(0..<5))
        } else {
            #expect(order.windows(epoch: 0).count == 1)
        }
        var epochs: [[Int32]] = []
        for _ in 0..<3 {
            var seen: [Int32] = []
            for _ in 0..<12 { seen += try #require(try l.nextPrepared()).labels }
            #expect(seen.count == 96 && Set(seen).count == 96, "an image twice in one epoch")
            #expect(seen.allSatisfy { (0..<103).contains($0) })
            epochs.append(seen)
        }
        #expect(epochs[0] != epochs[1] && epochs[1] != epochs[2], "epochs in the same order")
        // Not the files' order.
        #expect(epochs[0] != (0..<96).map { Int32($0) })
    }

    /// A loader started at step t gives what a loader from 0 gives after t steps:
    /// images, labels and augmentation, across an epoch boundary and windows.
    @Test(arguments: [1 << 30, 30])
    func startingAtAStepEqualsReadingUpToIt(window: Int) throws {
        let (fx, catalog) = try Self.fixture([10, 25, 3, 40, 25])
        defer { fx.remove() }
        let straight = try Self.loader(catalog, batch: 8, window: window, augmentation: .train)
        var expected: [Batch] = []
        for _ in 0..<30 { expected.append(try #require(try straight.next())) }
        for start in [0, 5, 11, 12, 13, 25] {
            let resumed = try Self.loader(catalog, batch: 8, window: window, start: start, augmentation: .train)
            for t in start..<min(start + 4, 30) {
                let b = try #require(try resumed.next())
                #expect(b.labels == expected[t].labels && b.images == expected[t].images, "start \(start), step \(t)")
            }
        }
    }

    /// Ranks split the global batch: rank r takes positions r, r + R, ..., with the same
    /// images and augmentation as one process with the whole batch.
    @Test func ranksSplitTheGlobalBatchDisjointly() throws {
        let (fx, catalog) = try Self.fixture([10, 25, 3, 40, 25])
        defer { fx.remove() }
        let one = try Self.loader(catalog, batch: 8, augmentation: .train)
        let ranks = try (0..<2).map { try Self.loader(catalog, batch: 4, rank: $0, ranks: 2, augmentation: .train) }
        #expect(ranks[0].epochOrder?.stepsPerEpoch == 12)
        let per = 4 * 4 * 3
        for step in 0..<14 {
            let whole = try #require(try one.next())
            let parts = try ranks.map { try #require(try $0.next()) }
            for r in 0..<2 {
                for j in 0..<4 {
                    let p = j * 2 + r
                    #expect(parts[r].labels[j] == whole.labels[p], "step \(step) rank \(r) sample \(j)")
                    #expect(Array(parts[r].images[(j * per)..<((j + 1) * per)]) == Array(whole.images[(p * per)..<((p + 1) * per)]))
                }
            }
            #expect(Set(parts[0].labels).isDisjoint(with: parts[1].labels))
        }
    }

    @Test func theSeedFixesTheOrder() throws {
        let (fx, catalog) = try Self.fixture([20, 20])
        defer { fx.remove() }
        func labels(_ seed: UInt64) throws -> [Int32] {
            let l = try Self.loader(catalog, batch: 8, seed: seed)
            return try (0..<5).flatMap { _ in try #require(try l.nextPrepared()).labels }
        }
        #expect(try labels(1) == labels(1))
        #expect(try labels(1) != labels(2))
    }

    /// ILSVRC's layout (class by class, so class-sorted shards): 100 classes x 50
    /// images in shards of 500. Every batch of 64 of an epoch holds at least 40 classes
    /// (measured: 41 to 54 with seed 0). A shuffle buffer holds the classes of the
    /// shards it has read: on ImageNet, 10,000 images of ~8 classes.
    @Test func classesAreMixedInEveryBatch() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ilsvrc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for s in 0..<10 {
            var f = TensorFile(metadata: [:])
            f["images"] = Tensor([UInt8](repeating: 9, count: 500 * 2 * 2 * 3), shape: [500, 2, 2, 3])
            f["labels"] = Tensor((0..<500).map { Int32(s * 10 + $0 / 50) }, shape: [500])
            try f.write(to: dir.appendingPathComponent(String(format: "train-%05d.safetensors.lz4", s)).path)
        }
        let catalog = try ShardCatalog(source: .directory(dir.path))
        let l = try BatchLoader(epochsOf: catalog, batchSize: 64, resolution: 2, augmentation: .none, seed: 0, windowImages: 1 << 30, startStep: 0)
        #expect(l.epochOrder?.stepsPerEpoch == 78)
        var fewest = Int.max, most = 0
        for _ in 0..<78 {
            let n = Set(try #require(try l.nextPrepared()).labels).count
            fewest = min(fewest, n)
            most = max(most, n)
        }
        #expect(fewest >= 40, "a batch of 64 holds only \(fewest) classes")
        #expect(most <= 64)
    }

    /// index.json's counts are used when they list the directory's shards, and a shard
    /// that holds another count than its index says is bad data when read.
    @Test func catalogComesFromIndexJSONAndIsChecked() throws {
        let (fx, read) = try Self.fixture([6, 10])
        defer { fx.remove() }
        let index = #"{"size": 4, "images": 16, "shards": [{"file": "train-00000.safetensors.lz4", "images": 6}, {"file": "train-00001.safetensors.lz4", "images": 9}]}"#
        try index.write(toFile: fx.dir.path + "/index.json", atomically: true, encoding: .utf8)
        let catalog = try ShardCatalog(source: fx.source)
        #expect(catalog.entries.map(\.path) == read.entries.map(\.path))
        #expect(catalog.entries.map(\.images) == [6, 9])
        let l = try Self.loader(catalog, batch: 15)
        #expect(throws: PackError.self) { _ = try l.nextPrepared() }
        do { _ = try Self.loader(catalog, batch: 15).nextPrepared() } catch {
            #expect("\(error)".contains("index.json says 9"), "\(error)")
        }
    }

    @Test func fewerImagesThanOneBatchIsBadData() throws {
        let (fx, catalog) = try Self.fixture([3, 4])
        defer { fx.remove() }
        let l = try Self.loader(catalog, batch: 8)
        #expect(throws: PackError.self) { _ = try l.nextPrepared() }
    }
}

extension ShardFixture {
    /// A fixture over shards already written into `dir`.
    init(existing dir: URL, images: Int, size: Int) {
        self.dir = dir
        self.images = images
        self.size = size
    }
}
