#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import FileFormats

/// What `ImagePacker` does; see pack-imagenet's help for the user's view.
public struct PackOptions: Sendable {
    /// Stored side S: shorter side resized to S (antialiased bicubic), centre crop S x S.
    public var size: Int = 224
    /// Images per shard (the last shard may hold fewer).
    public var shardSize: Int = 1000
    /// `train` or `val`; names the shards and goes into their metadata.
    public var split: String = "train"
    /// The class list (WordNet ids or folder names); nil: the sorted names found in the inputs.
    public var classes: [String]?
    /// Decoding threads.
    public var jobs: Int = 1
    /// Stop after this many images (nil: all).
    public var limit: Int?
    /// Fail on the first bad file instead of skipping it.
    public var strict: Bool = false
    /// Validation label files (LOC_val_solution.csv, or ground truth + synset list).
    public var labelFiles: [String] = []
    /// JPEGs whose shorter side is at least `dctFactor * size` are decoded with
    /// libjpeg's DCT scaling (1/2, 1/4, 1/8) down to no less than that.
    public var dctFactor: Double = 2

    public init() {}
}

/// One file that was not packed and why.
public struct SkippedFile: Sendable, Equatable {
    public var source: String
    public var reason: String
}

/// A finished shard as recorded in index.json.
public struct ShardRecord: Sendable {
    public var file: String
    public var images: Int
    public var bytes: Int
    public var sha256: String
}

/// Counters passed to the progress callback after each decoded chunk.
public struct PackProgress: Sendable {
    public var images: Int
    public var skipped: Int
    /// Images expected in all (nil when unknown, e.g. archives with --classes).
    public var expected: Int?
    public var seconds: Double
}

/// The result of a run.
public struct PackSummary: Sendable {
    public var images: Int
    public var classes: [String]
    public var countsPerClass: [Int]
    public var shards: [ShardRecord]
    public var skipped: [SkippedFile]
    public var seconds: Double
    /// index.json, as written next to the shards (also returned in stream mode).
    public var index: JSONValue
}

/// Where shards go.
public enum ShardDestination {
    /// A directory, replaced as a whole at the end of the run: shards and
    /// index.json are written into `<dir>.tmp-<pid>` and swapped in with one
    /// rename, so readers see the old output or the new one, never a mixture.
    case directory(String)
    /// Shard frames back to back, handed to `write` (e.g. stdout).
    case stream(([UInt8]) throws -> Void)
}

/// Decodes, resizes, centre-crops and packs images into shards.
/// Order: inputs as given, directories sorted by name, archives in member
/// order; decoding runs on `jobs` threads but results keep that order, so the
/// output is byte-identical for the same inputs and options.
public struct ImagePacker {
    public var options: PackOptions
    /// Called once per skipped file (before it is recorded), on the calling thread.
    public var onSkip: (SkippedFile) -> Void = { _ in }
    /// Called after each chunk of images, on the calling thread.
    public var onProgress: (PackProgress) -> Void = { _ in }

    public init(options: PackOptions) { self.options = options }

    public static let shardFormat = "alphanet-shards/1"

    public func run(inputs: [String], to destination: ShardDestination) throws -> PackSummary {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        let o = options
        guard o.size >= 1, o.shardSize >= 1, o.jobs >= 1 else { throw PackError(.usage, "size, shard size and jobs must be at least 1") }
        let labels = try ValidationLabels(files: o.labelFiles)
        let kinds = try PackInputs.classify(inputs)

        // Phase 1: the class list (and the image count, for the ETA).
        var expected: Int?
        let classes: [String]
        if let given = o.classes {
            classes = given
        } else {
            var names = Set<String>(labels.classNames)
            var maxIndex = -1
            var count = 0
            var hasArchiveClassTars = false
            try PackInputs.walk(kinds, namesOnly: true) { item in
                count += 1
                switch item.classRef {
                case let .name(n):
                    names.insert(n)
                    if PackInputs.isTarName(item.source) { hasArchiveClassTars = true }
                case let .index(i): maxIndex = max(maxIndex, i)
                case .fileName: break
                }
            }
            if maxIndex >= 0 {
                guard names.isEmpty else { throw PackError(.usage, "IDX inputs (numbered classes) cannot be mixed with named classes; give --classes") }
                classes = (0...maxIndex).map(String.init)
            } else {
                classes = names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            }
            expected = hasArchiveClassTars ? nil : count
        }
        // Files still to come when a shard starts bound its image count, which lets the
        // writer compress a shard while it fills (see `streamedShard`).
        let expectedFiles = expected
        guard !classes.isEmpty else { throw PackError(.dataError, "no classes found: expected class folders, class tars, IDX labels, or --labels for flat images", location: inputs.joined(separator: " ")) }
        let classIndex = Dictionary(classes.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        if let limit = o.limit { expected = min(expected ?? limit, limit) }

        let sink = try ShardSink(destination: destination, split: o.split)
        let writer = AsyncShardWriter(sink: sink)
        defer {
            try? writer.wait()
            sink.abandon()
        }
        var metadata: [String: String] = [
            "format": ImagePacker.shardFormat,
            "split": o.split,
            "size": String(o.size),
            "classes": JSONValue.array(classes.map { .string($0) }).jsonText,
        ]
        metadata["layout"] = "NHWC uint8 RGB"

        var skipped: [SkippedFile] = []
        var counts = [Int](repeating: 0, count: classes.count)
        var images = 0
        var shardPixels: [UInt8] = []
        var shardLabels: [Int32] = []
        let imageBytes = o.size * o.size * 3
        shardPixels.reserveCapacity(o.shardSize * imageBytes)

        func skip(_ source: String, _ reason: String) throws {
            if o.strict { throw PackError(.dataError, reason, location: source) }
            let s = SkippedFile(source: source, reason: reason)
            onSkip(s)
            skipped.append(s)
        }
        // The shard being compressed as it fills: started with its first image when the
        // images it will hold are known (the full shard size, or all that remain); its
        // pixels go to the writer after each chunk. A skip or a short input makes the
        // count wrong: the stream is dropped and the shard written whole at the end, the
        // same bytes either way (LZ4FrameCompressor equals LZ4Frame.compress).
        var streamedShard: (images: Int, bytesSent: Int)?
        func startShardIfKnown() {
            guard shardLabels.isEmpty, let files = expectedFiles else { return }
            var remaining = files - images - skipped.count
            if let limit = o.limit { remaining = min(remaining, limit - images) }
            let n = min(o.shardSize, remaining)
            guard n > 0 else { return }
            writer.beginStream(metadata: metadata, images: n, size: o.size)
            streamedShard = (n, 0)
        }
        func sendStreamedPixels() {
            guard let s = streamedShard, shardPixels.count > s.bytesSent else { return }
            guard shardLabels.count <= s.images else {
                // More images than files were counted (the input changed since): write whole.
                writer.abandonStream()
                streamedShard = nil
                return
            }
            writer.streamPixels(Array(shardPixels[s.bytesSent...]))
            streamedShard = (s.images, shardPixels.count)
        }
        func flushShard() throws {
            guard !shardLabels.isEmpty else { return }
            if let s = streamedShard {
                if s.images == shardLabels.count {
                    sendStreamedPixels()
                    streamedShard = nil
                    try writer.finishStream(labels: shardLabels)
                    shardPixels.removeAll(keepingCapacity: true)
                    shardLabels.removeAll(keepingCapacity: true)
                    return
                }
                streamedShard = nil
                writer.abandonStream()
            }
            var file = TensorFile(metadata: metadata)
            file["images"] = Tensor(shardPixels, shape: [shardLabels.count, o.size, o.size, 3])
            file["labels"] = Tensor(shardLabels, shape: [shardLabels.count])
            try writer.write(file, images: shardLabels.count)
            shardPixels.removeAll(keepingCapacity: true)
            shardLabels.removeAll(keepingCapacity: true)
        }

        // Phase 2: decode in chunks on `jobs` threads, consume in order. A chunk decodes in
        // the background while this thread reads the next one's files and consumes the
        // previous chunk's results (one chunk in flight), so reading overlaps decoding.
        let chunkSize = max(32, o.jobs * 16)
        var chunk: [(PackItem, Int32)] = []
        chunk.reserveCapacity(chunkSize)
        var inFlight: (items: [(PackItem, Int32)], group: DispatchGroup, results: DecodeResults)?
        // Two chunks overlap (the next starts before the last is waited for), each with
        // `jobs` workers: at most `jobs` images decode at once, so --jobs is the number of
        // busy cores and a chunk's last images overlap the next chunk's first.
        let decodeSlots = DispatchSemaphore(value: o.jobs)
        func startChunk() throws {
            guard !chunk.isEmpty else { return }
            let items = chunk
            chunk.removeAll(keepingCapacity: true)
            let payloads = items.map { $0.0.payload }
            let results = DecodeResults()
            let group = DispatchGroup()
            let (size, dctFactor, jobs) = (o.size, o.dctFactor, o.jobs)
            DispatchQueue.global().async(group: group) {
                results.values = ImagePacker.decodeAll(payloads, size: size, dctFactor: dctFactor, jobs: jobs, slots: decodeSlots)
            }
            try finishChunk()
            inFlight = (items, group, results)
        }
        func finishChunk() throws {
            guard let (items, group, decoded) = inFlight else { return }
            inFlight = nil
            group.wait()
            for ((item, label), result) in zip(items, decoded.values) {
                switch result {
                case let .failure(e): try skip(item.source, e.description)
                case let .success(pixels):
                    startShardIfKnown()
                    shardPixels.append(contentsOf: pixels)
                    shardLabels.append(label)
                    counts[Int(label)] += 1
                    images += 1
                    if shardLabels.count == o.shardSize { try flushShard() }
                }
            }
            sendStreamedPixels()
            onProgress(PackProgress(images: images, skipped: skipped.count, expected: expected, seconds: elapsed()))
        }

        struct LimitReached: Error {}
        do {
            try PackInputs.walk(kinds, namesOnly: false) { item in
                if let limit = o.limit, images + (inFlight?.items.count ?? 0) + chunk.count >= limit {
                    // Files not yet decoded may still fail: settle them, and stop only when
                    // --limit images are really packed (it counts images, not files).
                    try startChunk()
                    try finishChunk()
                    if images >= limit { throw LimitReached() }
                }
                let name: String?
                switch item.classRef {
                case let .name(n): name = n
                case let .index(i): name = i < classes.count ? classes[i] : nil
                case let .fileName(f): name = labels.wnid(forFileName: f)
                }
                if case let .unreadable(why) = item.payload { try skip(item.source, why); return }
                guard let name else {
                    let why: String
                    if case let .index(i) = item.classRef { why = "label \(i) is beyond the \(classes.count) classes" }
                    else { why = labels.isEmpty ? "no class: a file outside class folders needs --labels" : "no label for this file in --labels" }
                    try skip(item.source, why)
                    return
                }
                guard let label = classIndex[name] else { try skip(item.source, "class '\(name)' is not in the class list"); return }
                chunk.append((item, Int32(label)))
                if chunk.count == chunkSize { try startChunk() }
            }
        } catch is LimitReached {}
        try startChunk()
        try finishChunk()
        try flushShard()
        try writer.wait()

        let seconds = elapsed()
        let index = JSONValue.object([
            ("format", .string(ImagePacker.shardFormat)),
            ("split", .string(o.split)),
            ("size", JSONValue(o.size)),
            ("images", JSONValue(images)),
            ("classes", .array(classes.map { .string($0) })),
            ("counts", .object(zip(classes, counts).map { ($0, JSONValue($1)) })),
            ("shards", .array(sink.records.map { r in
                .object([("file", .string(r.file)), ("images", JSONValue(r.images)), ("bytes", JSONValue(r.bytes)), ("sha256", .string(r.sha256))])
            })),
            ("options", .object([
                ("size", JSONValue(o.size)), ("shard_size", JSONValue(o.shardSize)), ("split", .string(o.split)),
                ("classes_given", .bool(o.classes != nil)), ("limit", o.limit.map { JSONValue($0) } ?? .null),
                ("strict", .bool(o.strict)), ("labels", .array(o.labelFiles.map { .string($0) })),
                ("resize", .string("shorter side to size, bicubic (a=-0.5) antialiased, centre crop; JPEG DCT scaling while shorter side >= \(o.dctFactor) * size")),
            ])),
            ("inputs", .array(inputs.map { .string($0) })),
            ("skipped", .array(skipped.map { .object([("file", .string($0.source)), ("reason", .string($0.reason))]) })),
        ])
        try sink.finish(index: index)
        return PackSummary(images: images, classes: classes, countsPerClass: counts, shards: sink.records, skipped: skipped, seconds: seconds, index: index)
    }

    /// Decodes and resizes `payloads` on `jobs` threads, each decode holding one of `slots`
    /// (shared by the overlapping chunks, so at most --jobs images decode at once); results
    /// in input order.
    static func decodeAll(_ payloads: [PackItem.Payload], size: Int, dctFactor: Double, jobs: Int,
                          slots: DispatchSemaphore) -> [Result<[UInt8], ImageDecodeError>] {
        let n = payloads.count
        let results = ResultSlots(count: n)
        let minSide = Int((Double(size) * dctFactor).rounded(.up))
        let workers = min(jobs, n)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < n {
                slots.wait()
                defer { slots.signal() }
                let r: Result<[UInt8], ImageDecodeError>
                switch payloads[i] {
                case let .encoded(bytes):
                    do throws(ImageDecodeError) {
                        r = .success(Resampler.resizeAndCentreCrop(try ImageCodec.decode(bytes, minimumShortSide: minSide), size: size))
                    } catch { r = .failure(error) }
                case let .pixels(image): r = .success(Resampler.resizeAndCentreCrop(image, size: size))
                case let .unreadable(why): r = .failure(.corrupt(why))
                }
                results.set(i, r)
                i += workers
            }
        }
        return results.values()
    }
}

/// A chunk's decode results, written by the background decode before its group
/// leaves and read after `wait()`.
final class DecodeResults: @unchecked Sendable {
    var values: [Result<[UInt8], ImageDecodeError>] = []
}

/// Result slots written by several threads, each slot by exactly one thread,
/// read after all of them have finished (concurrentPerform returns).
final class ResultSlots: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<[UInt8], ImageDecodeError>>
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: .failure(.corrupt("not decoded")))
    }
    func set(_ i: Int, _ r: Result<[UInt8], ImageDecodeError>) { slots[i] = r }
    func values() -> [Result<[UInt8], ImageDecodeError>] { Array(slots) }
    deinit {
        slots.deinitialize()
        slots.deallocate()
    }
}
