import DataPipeline
import FileFormats
import Foundation
import NASCore
import ONNXFormat
import Supernet
import System

/// `export-subnet` as a library: a subnet of a checkpoint as a model of its own
/// (`ExportedSubnet`), its BN statistics recalibrated on given images exactly as
/// estimate-acc recalibrates (the first `batches` batches of `batchSize` of the shards,
/// in file order, under `transform`), or the checkpoint's own when none are given.
public struct SubnetExport {
    public var checkpointPath: String
    public var spacePath: String?
    public var calibrationPath: String?
    public var calibrationBatches = 64
    public var batchSize = 256
    public var transform = EvaluationTransformChoice.auto
    public var threads = Cores.available
    public var format = Format.safetensors

    /// What the model file holds.
    public enum Format: Equatable, Sendable {
        /// The official static subnet's state_dict (names, shapes, order) with metadata.
        case safetensors
        /// An ONNX model of the subnet's inference graph (`ONNXExport`), BatchNorm folded
        /// into the convolutions when asked.
        case onnx(foldBatchNorm: Bool)
    }

    public init(checkpointPath: String) { self.checkpointPath = checkpointPath }

    /// What an export made.
    public struct Result {
        public var model: Model
        public var arch: Arch
        public var transform: EvaluationTransform
        /// Problems worth a warning (no calibration).
        public var warnings: [String]
    }

    /// The model in its format.
    public enum Model {
        case tensors(TensorFile)
        case onnx(Data)
    }

    /// The checkpoint to export from (its space, the arch it serves if only one).
    public func loadCheckpoint() throws(Failure) -> Checkpoint {
        let given = try spacePath.map { p throws(Failure) in try SearchSpace(contentsOf: p) }
        return try Checkpoint(contentsOf: checkpointPath, space: given)
    }

    public func export(_ arch: Arch, from checkpoint: Checkpoint) throws(Failure) -> Result {
        if let why = Checkpoint.refusal(of: arch, served: try checkpoint.servedArch()) { throw .data(why, at: checkpointPath) }
        if let b = arch.blocks(in: checkpoint.space).first(where: { $0.hasExpand && arch.expandRatio[$0.stage] == 1 }) {
            // The supernet (as the official dynamic model) still runs the stage's 1x1 expansion
            // at ratio 1; the official static subnet has none there, so no static file computes it.
            throw .data("'expand_ratio' 1 in stage \(b.stage), whose other choices expand: the official static subnet has no expansion conv there while the supernet runs one, so this arch cannot be exported faithfully")
        }
        var trainedWith: AugmentMode?
        if let text = checkpoint.training?.info["options"]?["augment"]?.stringValue { trainedWith = AugmentMode(rawValue: text) }
        let chosen: EvaluationTransform
        if transform == .auto, trainedWith == nil, let t = checkpoint.exportedMetadata["eval_transform"].flatMap(EvaluationTransform.init(rawValue:)) {
            chosen = t
        } else {
            chosen = transform.resolved(trainedWith: trainedWith)
        }
        let model = Supernet(weights: checkpoint.weights, space: checkpoint.space, context: ComputeContext(workers: threads))
        var warnings: [String] = []
        var meta: [String: String] = [:]
        if let calibrationPath {
            try EstimationInference.recalibrate(model: model, arch: arch, calibration: calibrationPath, batchSize: batchSize,
                                                batches: calibrationBatches, transform: chosen)
            meta["calibration"] = JSONValue.object([
                ("shards", .string(calibrationPath)), ("batches", JSONValue(calibrationBatches)), ("batch_size", JSONValue(batchSize)),
                ("transform", .string(chosen.rawValue)),
            ]).jsonText
        } else {
            warnings.append("no --calib: the BN statistics are the checkpoint's running ones; a supernet's are not any subnet's own, so recalibrate (--calib SHARDS) for the accuracy estimate-acc measures")
            meta["calibration"] = "none: the checkpoint's running statistics"
        }
        let r = arch.resolution
        meta["resolution"] = String(r)
        meta["input"] = "RGB images, \(r)x\(r); each value v in 0...255 becomes (v - mean) / std per channel; this engine takes NHWC, ONNX NCHW"
        meta["normalization"] = JSONValue.object([
            ("mean", .array(ImageNetNormalization.mean.map { .double(Double($0)) })), ("std", .array(ImageNetNormalization.std.map { .double(Double($0)) })),
        ]).jsonText
        meta["eval_transform"] = chosen.rawValue
        meta["eval_transform_description"] = chosen == .eval
            ? "resize the shorter side to int(\(r) / 0.875) = \(Int(Double(r) / 0.875 + 1e-9)) (bicubic), centre crop \(r)x\(r)"
            : "resize the whole image to \(r)x\(r) (bicubic)"
        meta["source_checkpoint_sha256"] = try fileSHA256(checkpointPath)
        if let classes = checkpoint.training?.info["classes"]?.stringValue, !classes.isEmpty { meta["classes"] = classes }
        meta["flops"] = String(arch.flops(in: checkpoint.space).roundedTo(4))
        meta["params"] = String(arch.params(in: checkpoint.space).roundedTo(4))
        model.prepareWeights(for: arch)  // a K-shot supernet's tensors: this subnet's mix
        switch format {
        case .safetensors:
            let file = ExportedSubnet.file(arch: arch, space: checkpoint.space, weights: model.weights, metadata: meta)
            return Result(model: .tensors(file), arch: arch, transform: chosen, warnings: warnings)
        case let .onnx(fold):
            var graph = model.inferenceGraph(for: arch)
            if fold { graph = graph.foldingBatchNorm() }
            meta["format"] = "alphanet-subnet-onnx"
            meta["arch"] = arch.merged().jsonText
            meta["batchnorm"] = fold ? "folded into the convolutions" : "BatchNormalization nodes (running statistics)"
            meta["input"] = "input: float [N, 3, \(r), \(r)] (NCHW), RGB; each value v in 0...255 becomes (v - mean) / std per channel (normalization); output logits: float [N, \(checkpoint.space.nClasses)]"
            do {
                let data = try ONNXExport.model(graph, name: "subnet", metadata: meta.sorted { $0.key < $1.key })
                return Result(model: .onnx(data), arch: arch, transform: chosen, warnings: warnings)
            } catch {
                throw Failure(.failure, "cannot encode the ONNX model: \(error)")
            }
        }
    }
}
