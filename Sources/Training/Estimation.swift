#if canImport(Glibc)
import Glibc
#endif
import DataPipeline
import FileFormats
import NASCore
import Supernet
import Synchronization
import System

/// How stored images become network inputs for calibration and validation.
public enum EvaluationTransform: String, CaseIterable, Sendable {
    /// The official evaluation transform: shorter side to resolution/0.875, centre
    /// crop (ImageNet, where training uses RandomResizedCrop).
    case eval
    /// The whole stored image resized to the resolution: for data trained on whole
    /// images (`train-supernet --augment none` or `pad-crop`, as the demo recipe).
    case resize

    public var augmentation: Augmentation { self == .eval ? .eval : .none }

    /// The transform that matches a training augmentation (`TrainingOptions.augment`).
    public static func matching(_ augment: AugmentMode) -> EvaluationTransform {
        augment == .train || augment == .autoAugmentTF ? .eval : .resize
    }
}

/// `estimate-acc --transform`: a transform, or `auto`, the one that matches how
/// the checkpoint was trained.
public enum EvaluationTransformChoice: String, Sendable, CaseIterable {
    case auto, eval, resize

    /// The transform for a checkpoint trained with `augment` (nil: no training options
    /// stored, as an imported official checkpoint: the official `eval`).
    public func resolved(trainedWith augment: AugmentMode?) -> EvaluationTransform {
        switch self {
        case .eval: .eval
        case .resize: .resize
        case .auto: augment.map(EvaluationTransform.matching) ?? .eval
        }
    }
}

/// The images BN recalibration and validation use, decoded once.
///
/// Calibration: the first `calibBatches` batches of `batchSize` images of
/// the calibration shards in file order (no shuffling), under `transform`
/// (default: the official evaluation transform), the same images for
/// every subnet. Validation: the validation shards in file order, the first
/// `valLimit` images if given.
///
/// Each set carries a SHA-256 over the images it uses (per image: the label
/// as little-endian int32, then the stored pixel bytes), so a cache can tell
/// whether two runs saw the same data regardless of file names or compression.
public struct EstimationData: Sendable {
    public var calibration: [BatchLoader.PreparedBatch]
    public var validation: [BatchLoader.PreparedBatch]
    public var calibrationImages: Int
    public var validationImages: Int
    public var calibrationDigest: String
    public var validationDigest: String
    public var batchSize: Int
    public var calibBatches: Int
    public var valLimit: Int?
    public var transform: EvaluationTransform
    public var calibrationPath: String
    public var validationPath: String

    public init(calibration calibPath: String, validation valPath: String, batchSize: Int, calibBatches: Int, valLimit: Int?,
                transform: EvaluationTransform = .eval) throws(Failure) {
        precondition(batchSize >= 1 && calibBatches >= 1, "EstimationData: batch size and calibration batches must be positive")
        self.transform = transform
        calibrationPath = calibPath
        validationPath = valPath
        self.batchSize = batchSize
        self.calibBatches = calibBatches
        self.valLimit = valLimit
        let cal = try EstimationData.preparedBatches(calibPath, batchSize: batchSize, maxBatches: calibBatches, digest: true)
        guard cal.images > 0 else { throw Failure.data("no images in the calibration shards", at: calibPath) }
        let val = try EstimationData.preparedBatches(valPath, batchSize: batchSize, maxImages: valLimit ?? .max, digest: true)
        guard val.images > 0 else { throw Failure.data("no images in the validation shards", at: valPath) }
        calibration = cal.batches
        validation = val.batches
        calibrationImages = cal.images
        validationImages = val.images
        calibrationDigest = cal.digest
        validationDigest = val.digest
    }

    /// The first `batches` batches of the shards at `path`, in file order,
    /// for BN recalibration (fewer if the shards hold fewer images).
    public static func calibrationBatches(_ path: String, batchSize: Int, batches: Int) throws(Failure) -> [BatchLoader.PreparedBatch] {
        let cal = try preparedBatches(path, batchSize: batchSize, maxBatches: batches, digest: false)
        guard cal.images > 0 else { throw Failure.data("no images in the calibration shards", at: path) }
        return cal.batches
    }

    /// Batches of the shards at `path` in file order, unrendered, until `maxBatches`
    /// batches or at least `maxImages` images are read; `images` counts at most
    /// `maxImages`, and with `digest` the SHA-256 (hex) over those images (see
    /// `PreparedBatch.updateDigest`), hashed as they arrive while the loader reads ahead.
    static func preparedBatches(_ path: String, batchSize: Int, maxBatches: Int = .max, maxImages: Int = .max,
                                digest: Bool) throws(Failure) -> (batches: [BatchLoader.PreparedBatch], images: Int, digest: String) {
        var batches: [BatchLoader.PreparedBatch] = []
        var images = 0
        var hash = SHA256()
        do {
            let loader = try BatchLoader(source: ShardSource.path(path), batchSize: batchSize, resolution: 32,
                                         augmentation: .eval, seed: 0, epochs: 1)
            while batches.count < maxBatches, images < maxImages, let b = try loader.nextPrepared() {
                let n = min(b.count, maxImages - images)
                if digest { b.updateDigest(&hash, images: n) }
                batches.append(b)
                images += n
            }
        } catch { throw error.located(at: path) }
        return (batches, images, digest ? SHA256.hex(hash.finalize()) : "")
    }

    /// Checks that every label names one of a model's `classes` (the shards' own class
    /// lists were checked when read; a shard without one may hold any label).
    public func checkLabels(classes: Int) throws(Failure) {
        for (set, path) in [(calibration, calibrationPath), (validation, validationPath)] {
            for b in set {
                if let bad = b.labels.first(where: { Int($0) >= classes }) {
                    throw .data("label \(bad) is outside the model's \(classes) classes", at: path)
                }
            }
        }
    }

    /// The settings that, with the checkpoint and the arch, determine a result.
    public var settings: JSONValue {
        var o: JSONValue = .object([
            ("calib_batches", JSONValue(calibration.count)),
            ("calib_batch_size", JSONValue(batchSize)),
            ("calib_images", JSONValue(calibrationImages)),
            ("calib_sha256", .string(calibrationDigest)),
            ("val_images", JSONValue(validationImages)),
            ("val_sha256", .string(validationDigest)),
        ])
        o["bn_calibration"] = .string("cumulative-mean-unbiased-var")
        o["eval_transform"] = .string(transform.rawValue)
        return o
    }
}

/// SHA-256 (hex) of a file's bytes, read in 1 MiB pieces.
public func fileSHA256(_ path: String) throws(Failure) -> String {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    defer { fd.close() }
    var hash = SHA256()
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let r = chunk.withUnsafeMutableBytes { fd.read(into: $0) }
        if r < 0 { throw .io("read error: \(errnoMessage())", at: path) }
        if r == 0 { break }
        chunk.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<r])) }
    }
    return SHA256.hex(hash.finalize())
}

/// Estimates the accuracy of subnets of one checkpoint on `EstimationData`,
/// `jobs` subnets at a time: each job owns a copy of the supernet (the
/// forward pass keeps per-model activations) with `workersPerJob` kernel
/// threads, and all jobs share the rendered calibration and validation
/// batches (rendered once per resolution, the most recent resolutions kept
/// within `cacheBytes`; a resolution's sets larger than that are rendered batch
/// by batch by each job as it uses them).
///
/// A result does not depend on `jobs`: each subnet is recalibrated from
/// reset statistics on the same batches in the same order.
public final class AccuracyEstimator: @unchecked Sendable {
    public let space: SearchSpace
    public let data: EstimationData
    public let jobs: Int
    private let models: [Supernet]
    private let renders: RenderedSets

    public init(checkpoint: Checkpoint, data: EstimationData, jobs: Int, workersPerJob: Int, cacheBytes: Int = 1 << 31) {
        precondition(jobs >= 1 && workersPerJob >= 1)
        space = checkpoint.space
        self.data = data
        self.jobs = jobs
        models = (0..<jobs).map { _ in
            Supernet(weights: checkpoint.weights, space: checkpoint.space, context: ComputeContext(workers: workersPerJob))
        }
        renders = RenderedSets(calibration: data.calibration, validation: data.validation,
                               augmentation: data.transform.augmentation, validationLimit: data.validationImages,
                               cacheBytes: cacheBytes)
    }

    /// Recalibrates BN for `arch` on job `job`'s model and validates it; the
    /// model's own statistics are restored afterwards. Each job is used by
    /// one thread at a time.
    public func evaluate(_ arch: Arch, job: Int = 0) -> SubnetAccuracy {
        SubnetEvaluator(model: models[job], sets: renders).evaluate(arch)
    }

    /// The BN running statistics after recalibrating `arch` (for tests and
    /// for `infer`), in the supernet's buffer layout.
    public func recalibratedStatistics(_ arch: Arch, job: Int = 0) -> [Float] {
        let model = models[job]
        let saved = model.runningStatistics()
        defer { model.setRunningStatistics(saved) }
        SubnetEvaluator.recalibrate(model, arch, on: renders.batches(resolution: arch.resolution).calibration)
        return model.runningStatistics()
    }
}
