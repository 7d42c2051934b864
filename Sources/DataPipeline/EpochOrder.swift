#if canImport(Glibc)
import Glibc
#endif
import FileFormats
import NASCore
import System

/// The shard files of a training set with their image counts, in the source's order:
/// from the directory's index.json when it lists exactly its shards, else by reading
/// each shard once.
public struct ShardCatalog: Sendable {
    public struct Entry: Sendable {
        public var path: String
        public var images: Int
    }
    public var entries: [Entry]
    /// Bytes one decoded image takes (its pixels), from the first shard.
    public var bytesPerImage: Int

    public var imageCount: Int { entries.reduce(0) { $0 + $1.images } }

    public init(entries: [Entry], bytesPerImage: Int) {
        self.entries = entries
        self.bytesPerImage = bytesPerImage
    }

    public init(source: ShardSource) throws(PackError) {
        guard let files = try source.shardFiles() else {
            throw PackError(.usage, "a stream has no catalog: exact epochs need shard files", location: source.name)
        }
        if case let .directory(dir) = source, let fromIndex = ShardCatalog.fromIndex(dir: dir, files: files) {
            self = fromIndex
            return
        }
        var entries: [Entry] = []
        var bytes = 0
        for path in files {
            let file: TensorFile
            do { file = try TensorFile(contentsOf: path) } catch { throw PackError(error, at: path) }
            let shard = try Shard(file, name: path)
            if bytes == 0, shard.count > 0 {
                if case .float32 = shard.pixels { bytes = shard.height * shard.width * 12 } else { bytes = shard.height * shard.width * 3 }
            }
            entries.append(Entry(path: path, images: shard.count))
        }
        self.init(entries: entries, bytesPerImage: max(bytes, 1))
        guard imageCount > 0 else { throw PackError(.dataError, "the shards hold no images", location: source.name) }
    }

    /// The catalog from pack-imagenet's index.json, when its shard list is exactly the
    /// directory's shards and each count is positive; nil otherwise (then shards are read).
    static func fromIndex(dir: String, files: [String]) -> ShardCatalog? {
        guard let bytes = try? readWholeFileOrNil(dir + "/index.json"),
              let json = try? bytes.withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }),
              case let .array(shards)? = json["shards"], let size = json["size"]?.intValue, size >= 1, size <= Int64(Shard.maximumSide)
        else { return nil }
        var entries: [Entry] = []
        for s in shards {
            guard let f = s["file"]?.stringValue, let n = s["images"]?.intValue, n >= 1, n <= Int64(Int32.max) else { return nil }
            entries.append(Entry(path: dir + "/" + f, images: Int(n)))
        }
        guard entries.map(\.path) == files else { return nil }
        return ShardCatalog(entries: entries, bytesPerImage: Int(size * size * 3))
    }
}

/// Reads a file, or nil when it does not exist.
private func readWholeFileOrNil(_ path: String) throws -> [UInt8]? {
    guard access(path, F_OK) == 0 else { return nil }
    return try readWholeFile(path)
}

/// The order of training images, as the official code's DistributedSampler (shuffle,
/// `set_epoch`) with drop_last: every epoch visits every image once in a seeded random
/// order; global step t is batch t mod S of epoch t / S (S = images / global batch, the
/// rest of an epoch dropped), and rank r of R takes positions r, r + R, ... of it. The
/// order is a pure function of (seed, epoch, position), so a run resumes at any step
/// without reading what came before.
///
/// Memory: the permutation is drawn over windows of shards that fit `windowImages`
/// (shards in a seeded random order per epoch, grouped greedily): within a window
/// every order is equally likely. When the whole set fits one window (the default
/// 4 GiB holds 1.4M images of 32 px), this is a uniform permutation of the whole set.
public struct EpochOrder: Sendable {
    public let catalog: ShardCatalog
    /// Images of one global batch (every rank's together).
    public let globalBatch: Int
    public let seed: UInt64
    /// Most images one window holds (at least the largest shard).
    public let windowImages: Int

    public var stepsPerEpoch: Int { catalog.imageCount / globalBatch }

    public init(catalog: ShardCatalog, globalBatch: Int, seed: UInt64, windowImages: Int) {
        precondition(globalBatch >= 1)
        self.catalog = catalog
        self.globalBatch = globalBatch
        self.seed = seed
        self.windowImages = max(windowImages, catalog.entries.map(\.images).max() ?? 1)
    }

    /// Fails when an epoch holds no batch (checked at the first batch, so a run with
    /// nothing to train, such as `--steps 0`, needs no data).
    func checkOneBatch() throws(PackError) {
        guard stepsPerEpoch > 0 else {
            throw PackError(.dataError, "the training data holds \(catalog.imageCount) images, fewer than one batch of \(globalBatch)",
                            location: catalog.entries.count == 1 ? catalog.entries[0].path : nil)
        }
    }

    /// One window of an epoch: its shards (catalog indices, in read order), the first
    /// epoch position it covers, and its image count.
    public struct Window: Sendable, Equatable {
        public var shards: [Int]
        public var start: Int
        public var count: Int
    }

    /// The windows of `epoch`, in order.
    public func windows(epoch: Int) -> [Window] {
        var random = SeededRandom.stream(seed: seed, index: 0x5348_0000_0000 | UInt64(epoch))
        var order = Array(catalog.entries.indices)
        seededShuffle(&order, &random)
        var out: [Window] = []
        var current = Window(shards: [], start: 0, count: 0)
        for s in order {
            let n = catalog.entries[s].images
            if n == 0 { continue }
            if current.count > 0, current.count + n > windowImages {
                out.append(current)
                current = Window(shards: [], start: current.start + current.count, count: 0)
            }
            current.shards.append(s)
            current.count += n
        }
        if current.count > 0 { out.append(current) }
        return out
    }

    /// The order within window `index` of `epoch`: entry i is the window-local image
    /// (shards concatenated in window order) at position `start + i`.
    public func permutation(epoch: Int, window index: Int, count: Int) -> [Int32] {
        var random = SeededRandom.stream(seed: seed, index: 0x5045_0000_0000 | UInt64(epoch) << 20 | UInt64(index))
        var p = (0..<Int32(count)).map { $0 }
        seededShuffle(&p, &random)
        return p
    }

    /// The random generator of one sample's augmentation: a pure function of the global
    /// step and the position in the global batch, so every rank count draws alike.
    public func augmentationRandom(step: Int, position: Int) -> SeededRandom {
        SeededRandom.stream(seed: seed ^ 0x4155_4745, index: UInt64(step) &* UInt64(globalBatch) &+ UInt64(position))
    }

}

/// Fisher-Yates from the last element down, one draw per swap: the shuffle of both
/// data orders (a seed fixes it).
func seededShuffle<T>(_ a: inout [T], _ random: inout SeededRandom) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(random.next() % UInt64(i + 1))) }
}
