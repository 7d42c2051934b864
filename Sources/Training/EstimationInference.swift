#if canImport(Glibc)
import Glibc
#endif
import System
import DataPipeline
import FileFormats
import NASCore
import Supernet

/// Images to run a subnet on, read from a tensor file's `images` tensor:
/// uint8 `[N, H, W, 3]` (a shard: normalised with the ImageNet mean/std) or
/// float32 `[N, H, W, 3]` (used as given). `labels` and the class list are
/// taken from a shard's `labels` tensor and `classes` metadata when present.
public struct InferenceImages: Sendable {
    /// NHWC float32, normalised.
    public var pixels: [Float]
    public var count: Int
    public var size: Int
    public var labels: [Int32]?
    public var classes: [String]
    /// True for uint8 input (a shard).
    public var isShard: Bool

    public init(file: TensorFile, name: String) throws(Failure) {
        guard let images = file["images"] else { throw Failure.data("no 'images' tensor", at: name) }
        guard images.shape.count == 4, images.shape[3] == 3 else {
            throw Failure.data("images have shape \(images.shape); [N, H, W, 3] is needed", at: name)
        }
        guard images.shape[1] == images.shape[2], images.shape[1] > 0 else {
            throw Failure.data("images are \(images.shape[1])x\(images.shape[2]); square images are needed", at: name)
        }
        count = images.shape[0]
        size = images.shape[1]
        switch images.dtype {
        case .u8:
            let m = ImageNetNormalization.mean, inv = ImageNetNormalization.std.map { 1 / $0 }
            pixels = images.bytes.enumerated().map { i, v in (Float(v) - m[i % 3]) * inv[i % 3] }
            isShard = true
        case .f32:
            pixels = images.floats()
            isShard = false
        default:
            throw Failure.data("images are \(images.dtype.rawValue); uint8 or float32 is needed", at: name)
        }
        if let l = file["labels"] {
            guard l.shape == [count], l.dtype == .i32 || l.dtype == .i64 else {
                throw Failure.data("labels have shape \(l.shape) (\(l.dtype.rawValue)); int32 [\(count)] is needed", at: name)
            }
            labels = l.ints().map { Int32(truncatingIfNeeded: $0) }
        } else {
            labels = nil
        }
        classes = EstimationInference.classList(file.metadata)
    }
}

extension InferenceImages {
    /// The images of the shards at `path` under the official evaluation
    /// transform at `resolution` (resize to resolution/0.875, centre crop),
    /// exactly as `estimate-acc --transform eval` renders its validation images.
    public init(evalTransformOf path: String, resolution: Int) throws(Failure) {
        var pixels: [Float] = []
        var labels: [Int32] = []
        var classes: [String] = []
        do {
            let loader = try BatchLoader(source: ShardSource.path(path), batchSize: 256, resolution: resolution,
                                         augmentation: .eval, seed: 0, epochs: 1)
            while let p = try loader.nextPrepared() {
                let b = BatchLoader.render(p, resolution: resolution, augmentation: .eval)
                pixels += b.images
                labels += b.labels
            }
            classes = loader.classes
        } catch { throw error.located(at: path) }
        guard !labels.isEmpty else { throw Failure.data("no images", at: path) }
        self.pixels = pixels
        self.labels = labels
        self.classes = classes
        count = labels.count
        size = resolution
        isShard = true
    }
}

/// Eval-mode inference of one subnet.
public enum EstimationInference {
    /// BatchNorm during inference.
    public enum BNMode: String, Sendable, CaseIterable {
        /// The checkpoint's running statistics.
        case running
        /// Each batch's own statistics (the supernet's statistics are left unchanged).
        case batch
    }

    /// The logits `[count, classes]` of `arch` on `images`, `batchSize`
    /// images per forward pass (the input is resized bicubically to the
    /// arch's resolution by the forward pass when sizes differ).
    public static func logits(model: Supernet, arch: Arch, images: InferenceImages, batchSize: Int, bn: BNMode) -> [Float] {
        precondition(batchSize >= 1)
        let per = images.size * images.size * 3
        var out: [Float] = []
        out.reserveCapacity(images.count * model.space.nClasses)
        var random = SeededRandom(seed: 0)
        let saved = model.runningStatistics()
        defer { model.setRunningStatistics(saved) }
        var start = 0
        while start < images.count {
            let n = min(batchSize, images.count - start)
            let logits = images.pixels.withUnsafeBufferPointer { buf in
                model.forward(arch: arch, input: UnsafeBufferPointer(rebasing: buf[(start * per)..<((start + n) * per)]),
                              shape: Shape4(n: n, h: images.size, w: images.size, c: 3),
                              normalization: bn == .running ? .runningStatistics : .batchStatistics,
                              trainable: false, random: &random)
            }
            out.append(contentsOf: logits)
            start += n
        }
        return out
    }

    /// Recalibrates the BN running statistics of `arch` in `model` on the
    /// first `batches` batches of the shards at `path` (as estimate-acc does)
    /// and leaves them there.
    public static func recalibrate(model: Supernet, arch: Arch, calibration path: String, batchSize: Int, batches: Int,
                                   transform: EvaluationTransform = .eval) throws(Failure) {
        let cal = try EstimationData.calibrationBatches(path, batchSize: batchSize, batches: batches)
        SubnetEvaluator.recalibrate(model, arch, on: RenderedBatches(cal, resolution: arch.resolution,
                                                                     augmentation: transform.augmentation))
    }

    /// The class list of shard metadata: `classes` as a JSON list of strings
    /// (or newline-separated text); empty when absent.
    public static func classList(_ metadata: [String: String]) -> [String] {
        guard let text = metadata["classes"] else { return [] }
        if let list = try? JSONValue.parse(text).arrayValue {
            return list.map { $0.stringValue ?? $0.jsonText }
        }
        return text.split(separator: "\n").map(String.init)
    }
}

/// One image's answer: its top classes with softmax probabilities.
public struct Prediction: Sendable {
    public var index: Int
    public var top: [(classIndex: Int, probability: Double)]
    public var label: Int?
}

extension Metrics {
    /// The `k` most probable classes of each row of `logits` `[n, classes]` with their
    /// softmax probabilities (computed in Double, shifted by the row maximum).
    public static func predictions(logits: [Float], classes: Int, k: Int, labels: [Int32]? = nil) -> [Prediction] {
        let n = classes > 0 ? logits.count / classes : 0
        let top = topK(logits: logits, classes: classes, k: min(k, classes))
        return (0..<n).map { i in
            let row = logits[(i * classes)..<((i + 1) * classes)]
            let maxV = row.max() ?? 0
            let sum = row.reduce(0.0) { $0 + exp(Double($1 - maxV)) }
            let entries = top[i].map { c in (classIndex: c, probability: exp(Double(row[row.startIndex + c] - maxV)) / sum) }
            return Prediction(index: i, top: entries, label: labels.map { Int($0[i]) })
        }
    }
}
