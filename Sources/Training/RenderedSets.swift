import DataPipeline
import Synchronization

/// Calibration and validation batches rendered per resolution, shared by the threads of
/// one process: `train-supernet`'s validation and `estimate-acc`'s jobs both evaluate many
/// subnets on the same two sets, at a few resolutions.
///
/// Rendered sets of the most recent resolutions are kept within `cacheBytes` (the newest
/// always). A resolution whose sets are larger than that (ImageNet's at 224 px) is not
/// rendered here: each caller renders it batch by batch, into one reused buffer, as it
/// uses the batches.
public final class RenderedSets: @unchecked Sendable {
    public let calibration: [BatchLoader.PreparedBatch]
    public let validation: [BatchLoader.PreparedBatch]
    public let augmentation: Augmentation
    /// Images of the validation set used (its first ones).
    public let validationImages: Int
    private let cacheBytes: Int
    private typealias Entry = (resolution: Int, calibration: [Batch], validation: [Batch], bytes: Int)
    private let entries = Mutex<[Entry]>([])

    public init(calibration: [BatchLoader.PreparedBatch], validation: [BatchLoader.PreparedBatch],
                augmentation: Augmentation, validationLimit: Int = .max, cacheBytes: Int) {
        self.calibration = calibration
        self.validation = validation
        self.augmentation = augmentation
        validationImages = min(validationLimit, validation.reduce(0) { $0 + $1.count })
        self.cacheBytes = cacheBytes
    }

    /// The two sets at resolution `r`. Rendering holds the lock: a second thread wanting
    /// the same resolution waits instead of rendering it again.
    public func batches(resolution r: Int) -> (calibration: AnySequence<Batch>, validation: AnySequence<Batch>) {
        let images = calibration.reduce(0) { $0 + $1.count } + validationImages
        guard images * r * r * 3 * 4 <= cacheBytes else {
            return (AnySequence(RenderedBatches(calibration, resolution: r, augmentation: augmentation)),
                    AnySequence(RenderedBatches(validation, resolution: r, augmentation: augmentation, limit: validationImages)))
        }
        let sets = entries.withLock { entries in batchesLocked(resolution: r, &entries) }
        return (AnySequence(sets.calibration), AnySequence(sets.validation))
    }

    private func batchesLocked(resolution r: Int, _ entries: inout [Entry]) -> (calibration: [Batch], validation: [Batch]) {
        if let i = entries.firstIndex(where: { $0.resolution == r }) {
            let hit = entries.remove(at: i)
            entries.insert(hit, at: 0)
            return (hit.calibration, hit.validation)
        }
        let cal = RenderedBatches(calibration, resolution: r, augmentation: augmentation).keptBatches()
        let val = RenderedBatches(validation, resolution: r, augmentation: augmentation, limit: validationImages).keptBatches()
        let bytes = (cal + val).reduce(0) { $0 + $1.images.count * 4 }
        entries.insert((r, cal, val, bytes), at: 0)
        var total = 0
        entries = entries.enumerated().filter { i, e in
            total += e.bytes
            return i == 0 || total <= cacheBytes
        }.map(\.element)
        return (cal, val)
    }

    /// Resolutions whose rendered sets are kept now, newest first (for tests).
    var keptResolutions: [Int] { entries.withLock { $0.map(\.resolution) } }
}
