import Dispatch
import FileFormats
import Synchronization
import NASCore
import System

/// A batch of network inputs: `images` NHWC float32 (count x resolution x
/// resolution x 3), normalised with the ImageNet mean/std for uint8 shards,
/// as stored for float32 shards.
public struct Batch: Sendable {
    public var images: [Float]
    public var labels: [Int32]
    public var count: Int
    public var resolution: Int

    /// The batch at another resolution by PyTorch's bicubic interpolation
    /// (what the official supernet does when its active resolution differs
    /// from the input's).
    public func interpolated(to resolution: Int) -> [Float] {
        Resampler.interpolateBicubic(images, count: count, height: self.resolution, width: self.resolution, outHeight: resolution, outWidth: resolution)
    }
}

/// Prepared batches rendered one at a time as they are iterated, at most `limit` images
/// in all, each rendered into the memory of the previous one (which the caller has let go
/// of by then: a batch still held is copied away by the array, never overwritten). For
/// sets too large to keep rendered (ImageNet's validation set at 224 px is 30 GB of
/// floats): memory stays at one batch, and no batch pays for fresh pages.
public struct RenderedBatches: Sequence, Sendable {
    public let prepared: [BatchLoader.PreparedBatch]
    public let resolution: Int
    public let augmentation: Augmentation
    public let limit: Int

    public init(_ prepared: [BatchLoader.PreparedBatch], resolution: Int, augmentation: Augmentation, limit: Int = .max) {
        self.prepared = prepared
        self.resolution = resolution
        self.augmentation = augmentation
        self.limit = limit
    }

    /// Images the iteration yields.
    public var imageCount: Int { Swift.min(limit, prepared.reduce(0) { $0 + $1.count }) }

    public struct Iterator: IteratorProtocol {
        let batches: RenderedBatches
        var index = 0, left: Int
        var storage: [Float] = []

        public mutating func next() -> Batch? {
            guard index < batches.prepared.count, left > 0 else { return nil }
            let p = batches.prepared[index]
            let n = Swift.min(p.count, left)
            index += 1
            left -= n
            let b = BatchLoader.render(p, count: n, resolution: batches.resolution, augmentation: batches.augmentation, reusing: &storage)
            storage = b.images
            return b
        }
    }

    public func makeIterator() -> Iterator { Iterator(batches: self, left: limit) }

    /// Every batch rendered into memory of its own, to keep.
    public func keptBatches() -> [Batch] {
        var kept: [Batch] = [], left = limit
        for p in prepared where left > 0 {
            let n = Swift.min(p.count, left)
            left -= n
            var fresh: [Float] = []
            kept.append(BatchLoader.render(p, count: n, resolution: resolution, augmentation: augmentation, reusing: &fresh))
        }
        return kept
    }
}

/// ImageNet normalisation: x = (v/255 - mean) / std with
/// mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225), written on the
/// 0-255 scale as the official code does (mean 123.675, 116.28, 103.53;
/// std 58.395, 57.12, 57.375).
public enum ImageNetNormalization {
    public static let mean: [Float] = [123.675, 116.28, 103.53]
    public static let std: [Float] = [58.395, 57.12, 57.375]
}

/// One stored image in the shuffle buffer.
struct Sample: Sendable {
    var pixels: Shard.Pixels
    var width: Int
    var height: Int
    var label: Int32
}

/// Batches of augmented, normalised images from shards, prepared one batch
/// ahead on a background thread.
///
/// Order: shard files are read in order, or, with a shuffle buffer, in a
/// seeded random order per epoch; samples pass through a buffer of
/// `shuffleBuffer` images from which a random one is drawn each time
/// (0 or 1: no shuffling). All randomness comes from `SeededRandom(seed:)`,
/// drawn on one thread, so a seed fixes every batch. Files repeat for ever
/// (epochs) unless `epochs` is given; a stream is read once.
///
/// Resolution: `next(resolution:)` renders the batch at any resolution from
/// the stored images (the crop boxes and flips are drawn before the
/// resolution is known, so they do not depend on it). AlphaNet trains each
/// subnet of a step at its own resolution on the same images: either call
/// `next(resolution: maxResolution)` and `Batch.interpolated(to:)` (the
/// official code's bicubic resize of the input), or render once per subnet
/// with `render(_:resolution:)`.
public final class BatchLoader: @unchecked Sendable {
    public let batchSize: Int
    public private(set) var resolution: Int
    public let augmentation: Augmentation
    /// Class list of the first shard read (empty until then).
    public private(set) var classes: [String] = []

    private let state: any BatchSource
    /// The exact-epoch order, when the loader follows one.
    public let epochOrder: EpochOrder?
    private let queue = DispatchQueue(label: "BatchLoader.prefetch")
    /// Signalled when the prefetched batch is in `pendingResult`.
    private var pending: DispatchSemaphore?
    private let pendingResult = Mutex<Result<PreparedBatch?, PackError>?>(nil)

    public init(source: ShardSource, batchSize: Int, resolution: Int, augmentation: Augmentation, seed: UInt64,
                shuffleBuffer: Int = 0, epochs: Int? = nil, dropLast: Bool = false) throws(PackError) {
        precondition(batchSize >= 1 && resolution >= 1, "BatchLoader: batch size and resolution must be positive")
        self.batchSize = batchSize
        self.resolution = resolution
        self.augmentation = augmentation
        state = LoaderState(reader: try ShardReader(source: source), batchSize: batchSize, augmentation: augmentation,
                            seed: seed, shuffleBuffer: shuffleBuffer, epochs: epochs, dropLast: dropLast)
        epochOrder = nil
    }

    /// Batches in exact epochs (see `EpochOrder`), starting at global step `startStep`
    /// with nothing read before it: `batchSize` images of rank `rank` of `ranks` per
    /// step (the global batch is `batchSize * ranks`). Never ends.
    public init(epochsOf catalog: ShardCatalog, batchSize: Int, resolution: Int, augmentation: Augmentation, seed: UInt64,
                windowImages: Int, startStep: Int, rank: Int = 0, ranks: Int = 1) throws(PackError) {
        precondition(batchSize >= 1 && resolution >= 1 && ranks >= 1 && (0..<ranks).contains(rank) && startStep >= 0)
        self.batchSize = batchSize
        self.resolution = resolution
        self.augmentation = augmentation
        let order = EpochOrder(catalog: catalog, globalBatch: batchSize * ranks, seed: seed, windowImages: windowImages)
        epochOrder = order
        state = EpochState(order: order, rank: rank, ranks: ranks, augmentation: augmentation, step: startStep)
    }

    /// Samples of a batch with their random draws, before rendering.
    public struct PreparedBatch: Sendable {
        var samples: [Sample]
        var draws: [SampleDraw]
        var rendered: Batch?
        public var count: Int { samples.count }
        public var labels: [Int32] { samples.map(\.label) }

        /// Adds the batch's first `images` images to `hash`, each as its label (int32,
        /// little-endian) followed by its stored pixel bytes (uint8, or float32 as in
        /// memory): the digest estimate-acc's cache keys use for the images a run saw.
        public func updateDigest(_ hash: inout SHA256, images: Int) {
            for s in samples.prefix(images) {
                var label = s.label.littleEndian
                withUnsafeBytes(of: &label) { hash.update($0) }
                switch s.pixels {
                case let .uint8(px): px.withUnsafeBytes { hash.update($0) }
                case let .float32(px): px.withUnsafeBytes { hash.update($0) }
                }
            }
        }
    }

    /// The next batch at `resolution` (default: the last one asked for),
    /// or nil when the source is exhausted.
    public func next(resolution: Int? = nil) throws(PackError) -> Batch? {
        if let resolution { self.resolution = resolution }
        guard let prepared = try takePrepared(renderingAhead: true) else { return nil }
        if let r = prepared.rendered, r.resolution == self.resolution { return r }
        return BatchLoader.render(prepared, resolution: self.resolution, augmentation: augmentation)
    }

    /// The next batch's samples and draws, unrendered (render it with `render`). The
    /// batch prepared ahead meanwhile is not rendered either: a caller that keeps
    /// prepared batches (estimate-acc's calibration and validation sets) renders
    /// them itself, at the subnet's resolution.
    public func nextPrepared() throws(PackError) -> PreparedBatch? {
        try takePrepared(renderingAhead: false)
    }

    /// The prefetched batch (or one prepared now), starting the prefetch of the
    /// next, which `renderingAhead` also renders at the current resolution.
    private func takePrepared(renderingAhead: Bool) throws(PackError) -> PreparedBatch? {
        let result: Result<PreparedBatch?, PackError>
        if let pending {
            pending.wait()
            result = pendingResult.withLock { $0 } ?? .success(nil)
        } else if exhausted {
            return nil
        } else {
            result = Result { () throws(PackError) in try state.prepare() }
        }
        self.pending = nil
        let prepared = try result.get()
        if classes.isEmpty { classes = state.classes }
        guard prepared != nil else { exhausted = true; return nil }
        startPrefetch(rendering: renderingAhead)
        return prepared
    }

    /// Whether `nextPrepared` would return at once (a batch, the end, or an error),
    /// waiting at most `seconds` for it: a caller that must stay responsive (to
    /// signals, while a pipe or FIFO stalls) polls this instead of blocking in `next`.
    public func waitUntilReady(seconds: Double) -> Bool {
        if exhausted { return true }
        if pending == nil { startPrefetch() }
        guard let pending, pending.wait(timeout: .now() + seconds) == .success else { return false }
        pending.signal()  // leave the batch for nextPrepared
        return true
    }

    /// True once the source returned its end.
    private var exhausted = false

    /// Prepares the following batch on the prefetch queue, and renders it if `rendering`.
    private func startPrefetch(rendering: Bool = true) {
        let done = DispatchSemaphore(value: 0)
        pending = done
        let res = self.resolution, aug = augmentation, st = state
        queue.async { [self] in
            var r = Result { () throws(PackError) in try st.prepare() }
            if rendering, case var .success(p?) = r {
                p.rendered = BatchLoader.render(p, resolution: res, augmentation: aug)
                r = .success(p)
            }
            pendingResult.withLock { $0 = r }
            done.signal()
        }
    }

    /// Renders prepared samples at `resolution` (parallel over images on the shared
    /// worker pool; deterministic, every draw was made beforehand).
    public static func render(_ p: PreparedBatch, resolution: Int, augmentation: Augmentation) -> Batch {
        var images: [Float] = []
        return render(p, count: p.count, resolution: resolution, augmentation: augmentation, reusing: &images)
    }

    /// The first `count` images of `p` rendered into `storage`'s memory (resized to fit, its
    /// capacity kept), which the returned batch then holds: give its `images` back as the
    /// next call's `storage` and a stream of batches renders into one allocation instead
    /// of fresh pages every batch.
    public static func render(_ p: PreparedBatch, count n: Int, resolution: Int, augmentation: Augmentation,
                              reusing storage: inout [Float]) -> Batch {
        precondition((0...p.count).contains(n), "BatchLoader.render: \(n) of \(p.count) images")
        let per = resolution * resolution * 3
        var images: [Float] = []
        swap(&images, &storage)
        if images.count > n * per {
            images.removeLast(images.count - n * per)
        } else if images.count < n * per {
            images.append(contentsOf: repeatElement(0, count: n * per - images.count))
        }
        images.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            WorkerPool.shared.run(n) { i in
                renderOne(p.samples[i], p.draws[i], resolution: resolution, augmentation: augmentation, into: base + i * per)
            }
        }
        return Batch(images: images, labels: Array(p.labels.prefix(n)), count: n, resolution: resolution)
    }

    static func renderOne(_ s: Sample, _ draw: SampleDraw, resolution: Int, augmentation: Augmentation, into dst: UnsafeMutablePointer<Float>) {
        var d = draw
        if augmentation == .eval { d.box = AugmentationDraws.evalBox(width: s.width, height: s.height, resolution: resolution) }
        let per = resolution * resolution * 3
        let out = UnsafeMutableBufferPointer(start: dst, count: per)
        switch (augmentation, s.pixels) {
        case let (.padCrop(pad), .uint8(px)):
            let shifted = padCropShift(px, width: s.width, height: s.height, dx: d.padX - pad, dy: d.padY - pad, flip: d.flip)
            shifted.withUnsafeBufferPointer { Resampler.resample($0, width: s.width, height: s.height, box: d.box, outWidth: resolution, outHeight: resolution, into: out) }
        case let (.padCrop(pad), .float32(px)):
            let shifted = padCropShift(px, width: s.width, height: s.height, dx: d.padX - pad, dy: d.padY - pad, flip: d.flip)
            shifted.withUnsafeBufferPointer { Resampler.resample($0, width: s.width, height: s.height, box: d.box, outWidth: resolution, outHeight: resolution, into: out) }
        case let (_, .uint8(px)):
            px.withUnsafeBufferPointer { Resampler.resample($0, width: s.width, height: s.height, box: d.box, outWidth: resolution, outHeight: resolution, flip: d.flip, into: out) }
        case let (_, .float32(px)):
            px.withUnsafeBufferPointer { Resampler.resample($0, width: s.width, height: s.height, box: d.box, outWidth: resolution, outHeight: resolution, flip: d.flip, into: out) }
        }
        if case .uint8 = s.pixels {
            // Resampled uint8 data: clamp to 0...255 (as PIL's 8-bit result), then normalise.
            let m = ImageNetNormalization.mean, sd = ImageNetNormalization.std
            let inv = sd.map { 1 / $0 }
            if let policy = d.autoAugment {
                // AutoAugment works on the 8-bit crop, as the official PIL pipeline.
                let bytes = (0..<per).map { UInt8(min(max(out[$0].rounded(), 0), 255)) }
                let augmented = AutoAugment.apply(policy, to: RGBImage(width: resolution, height: resolution, pixels: bytes))
                for i in 0..<per { out[i] = (Float(augmented.pixels[i]) - m[i % 3]) * inv[i % 3] }
                return
            }
            for p in 0..<(resolution * resolution) {
                for c in 0..<3 {
                    let v = min(max(out[p * 3 + c].rounded(), 0), 255)
                    out[p * 3 + c] = (v - m[c]) * inv[c]
                }
            }
        }
    }

    /// The stored image shifted by (dx, dy) with zeros filling the border
    /// (zero padding then cropping the stored size), mirrored if `flip`.
    static func padCropShift<T: PixelComponent & Numeric>(_ px: [T], width: Int, height: Int, dx: Int, dy: Int, flip: Bool) -> [T] {
        var out = [T](repeating: 0, count: px.count)
        for y in 0..<height {
            let sy = y + dy
            guard sy >= 0 && sy < height else { continue }
            for x in 0..<width {
                let sx = x + dx
                guard sx >= 0 && sx < width else { continue }
                let ox = flip ? width - 1 - x : x
                for c in 0..<3 { out[(y * width + ox) * 3 + c] = px[(sy * width + sx) * 3 + c] }
            }
        }
        return out
    }
}

/// What a loader draws batches from: touched only by one thread at a time (the
/// caller before the first prefetch, then the prefetch queue, each waiting for the
/// previous step to finish).
protocol BatchSource: AnyObject, Sendable {
    func prepare() throws(PackError) -> BatchLoader.PreparedBatch?
    var classes: [String] { get }
}

/// The shuffle-buffer order: shards in order (or a seeded random order per pass),
/// through a buffer from which a random image is drawn each time.
final class LoaderState: BatchSource, @unchecked Sendable {
    var reader: ShardReader
    let batchSize: Int
    let augmentation: Augmentation
    var rng: SeededRandom
    let shuffleBuffer: Int
    let epochs: Int?
    let dropLast: Bool
    var epoch = 0
    /// Images read in the current pass over the shards.
    var imagesThisPass = 0
    var buffer: [Sample] = []
    var exhausted = false
    var classes: [String] = []

    init(reader: ShardReader, batchSize: Int, augmentation: Augmentation, seed: UInt64, shuffleBuffer: Int, epochs: Int?, dropLast: Bool) {
        self.reader = reader
        self.batchSize = batchSize
        self.augmentation = augmentation
        rng = SeededRandom(seed: seed)
        self.shuffleBuffer = shuffleBuffer
        self.epochs = epochs
        self.dropLast = dropLast
        if shuffleBuffer > 1, let n = reader.fileCount { self.reader.restart(order: shuffledOrder(n)) }
    }

    func shuffledOrder(_ n: Int) -> [Int] {
        var order = Array(0..<n)
        seededShuffle(&order, &rng)
        return order
    }

    /// Appends the next shard's samples to the buffer; false at the end.
    func refill() throws(PackError) -> Bool {
        while !exhausted {
            if let shard = try reader.next() {
                if classes.isEmpty { classes = shard.classes }
                try checkAugmentable(shard, augmentation, location: reader.lastShardName)
                buffer += samples(of: shard)
                imagesThisPass += shard.count
                return true
            }
            // A pass that found no image would repeat forever.
            guard imagesThisPass > 0 else { throw PackError(.dataError, "the shards hold no images", location: reader.source.name) }
            imagesThisPass = 0
            epoch += 1
            if reader.isRepeatable, epochs.map({ epoch < $0 }) ?? true {
                reader.restart(order: shuffleBuffer > 1 ? shuffledOrder(reader.fileCount ?? 0) : nil)
                continue
            }
            exhausted = true
        }
        return false
    }

    /// Draws the next batch's samples (from the shuffle buffer) and their augmentation parameters.
    func prepare() throws(PackError) -> BatchLoader.PreparedBatch? {
        var samples: [Sample] = []
        samples.reserveCapacity(batchSize)
        let keep = max(shuffleBuffer, 1)
        while samples.count < batchSize {
            while buffer.count < keep, try refill() {}
            guard !buffer.isEmpty else { break }
            if shuffleBuffer > 1 {
                let j = Int(rng.next() % UInt64(buffer.count))
                buffer.swapAt(j, buffer.count - 1)
                samples.append(buffer.removeLast())
            } else {
                samples.append(buffer.removeFirst())
            }
        }
        if samples.isEmpty || (dropLast && samples.count < batchSize) { return nil }
        let draws = samples.map { draw(for: $0) }
        return BatchLoader.PreparedBatch(samples: samples, draws: draws, rendered: nil)
    }

    func draw(for s: Sample) -> SampleDraw { drawAugmentation(for: s, augmentation, &rng) }
}

/// One sample's augmentation parameters.
func drawAugmentation(for s: Sample, _ augmentation: Augmentation, _ rng: inout SeededRandom) -> SampleDraw {
    let full = PixelBox(x0: 0, y0: 0, x1: Double(s.width), y1: Double(s.height))
    switch augmentation {
    case .train:
        let box = AugmentationDraws.randomResizedCrop(width: s.width, height: s.height, rng: &rng)
        return SampleDraw(box: box, flip: rng.next() & 1 == 1)
    case .trainAutoAugment:
        // The crop and flip drawn as `.train` draws them, then the policy's draws (in exact
        // epochs each position has its own stream, so the crops equal `.train`'s; in the
        // shuffle-buffer order one stream runs on, so later samples' crops differ).
        let box = AugmentationDraws.randomResizedCrop(width: s.width, height: s.height, rng: &rng)
        let flip = rng.next() & 1 == 1
        return SampleDraw(box: box, flip: flip, autoAugment: AutoAugment.Draw(&rng))
    case .eval:
        // The box depends on the resolution: made at render time.
        return SampleDraw(box: full, flip: false)
    case .none:
        return SampleDraw(box: full, flip: false)
    case let .padCrop(pad):
        let px = Int(rng.next() % UInt64(2 * pad + 1)), py = Int(rng.next() % UInt64(2 * pad + 1))
        return SampleDraw(box: full, flip: rng.next() & 1 == 1, padX: px, padY: py)
    }
}

/// AutoAugment's operations are defined on 8-bit images: float shards are refused.
func checkAugmentable(_ shard: Shard, _ augmentation: Augmentation, location: String) throws(PackError) {
    guard augmentation == .trainAutoAugment, case .float32 = shard.pixels else { return }
    throw PackError(.dataError, "holds float32 images; AutoAugment (--augment auto-augment-tf) needs uint8 shards", location: location)
}

/// Splits a shard into samples.
func samples(of shard: Shard) -> [Sample] {
    let per = shard.height * shard.width * 3
    return (0..<shard.count).map { i in
        let px: Shard.Pixels
        switch shard.pixels {
        case let .uint8(a): px = .uint8(Array(a[(i * per)..<((i + 1) * per)]))
        case let .float32(a): px = .float32(Array(a[(i * per)..<((i + 1) * per)]))
        }
        return Sample(pixels: px, width: shard.width, height: shard.height, label: shard.labels[i])
    }
}

/// The exact-epoch order (`EpochOrder`): the current window's shards in memory, each
/// batch the rank's positions of the global batch, augmentation drawn per position.
final class EpochState: BatchSource, @unchecked Sendable {
    let order: EpochOrder
    let rank: Int
    let ranks: Int
    let augmentation: Augmentation
    /// The global step of the next batch.
    var step: Int
    var classes: [String] = []
    private var windows: [EpochOrder.Window] = []
    private var windowsEpoch = -1
    private var window: (index: Int, start: Int, count: Int)?
    private var windowSamples: [Sample] = []
    private var windowOrder: [Int32] = []
    /// Shards of the current window, by catalog index (kept when the next window holds them).
    private var loaded: [Int: [Sample]] = [:]

    init(order: EpochOrder, rank: Int, ranks: Int, augmentation: Augmentation, step: Int) {
        self.order = order
        self.rank = rank
        self.ranks = ranks
        self.augmentation = augmentation
        self.step = step
    }

    func prepare() throws(PackError) -> BatchLoader.PreparedBatch? {
        try order.checkOneBatch()
        let perEpoch = order.stepsPerEpoch
        let epoch = step / perEpoch
        let first = (step % perEpoch) * order.globalBatch
        if windowsEpoch != epoch {
            windows = order.windows(epoch: epoch)
            windowsEpoch = epoch
            window = nil
        }
        var samples: [Sample] = []
        var draws: [SampleDraw] = []
        for j in stride(from: rank, to: order.globalBatch, by: ranks) {
            let s = try sample(epoch: epoch, position: first + j)
            var random = order.augmentationRandom(step: step, position: j)
            draws.append(drawAugmentation(for: s, augmentation, &random))
            samples.append(s)
        }
        step += 1
        return BatchLoader.PreparedBatch(samples: samples, draws: draws, rendered: nil)
    }

    private func sample(epoch: Int, position p: Int) throws(PackError) -> Sample {
        if let w = window, (w.start..<(w.start + w.count)).contains(p) {
            return windowSamples[Int(windowOrder[p - w.start])]
        }
        guard let index = windows.firstIndex(where: { ($0.start..<($0.start + $0.count)).contains(p) }) else {
            preconditionFailure("EpochState: position \(p) outside epoch \(epoch)")
        }
        let w = windows[index]
        var kept: [Int: [Sample]] = [:]
        var all: [Sample] = []
        all.reserveCapacity(w.count)
        for s in w.shards {
            let shardSamples: [Sample]
            if let done = loaded[s] {
                shardSamples = done
            } else {
                let path = order.catalog.entries[s].path
                let file: TensorFile
                do { file = try TensorFile(contentsOf: path) } catch { throw PackError(error, at: path) }
                let shard = try Shard(file, name: path)
                guard shard.count == order.catalog.entries[s].images else {
                    throw PackError(.dataError, "holds \(shard.count) images where index.json says \(order.catalog.entries[s].images)", location: path)
                }
                if classes.isEmpty { classes = shard.classes }
                try checkAugmentable(shard, augmentation, location: path)
                shardSamples = DataPipeline.samples(of: shard)
            }
            kept[s] = shardSamples
            all += shardSamples
        }
        loaded = kept
        windowSamples = all
        windowOrder = order.permutation(epoch: epoch, window: index, count: w.count)
        window = (index, w.start, w.count)
        return windowSamples[Int(windowOrder[p - w.start])]
    }
}
