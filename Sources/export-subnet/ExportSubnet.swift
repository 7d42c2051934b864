import ArgumentParser
import FileFormats
import ONNXFormat
import Supernet
import ToolSupport
import Training
import System

@main
struct ExportSubnet: Tool {
    static let configuration = CommandConfiguration(
        commandName: "export-subnet",
        abstract: "Write one subnet of a checkpoint as a model of its own.",
        discussion: """
            The file holds only the subnet's weights, sliced out of the supernet, under the \
            names, shapes and order of the official static subnet (AttentiveNAS \
            get_active_subnet(preserve_weight=True).state_dict()), so PyTorch loads it into the \
            official static model with load_state_dict. BatchNorm statistics are recalibrated \
            on --calib (the first --calib-batches batches of --batch-size, file order, under the \
            evaluation transform), exactly as estimate-acc does; without --calib the \
            checkpoint's running statistics are kept, with a warning. The metadata names the \
            arch, the space, the input resolution, the normalisation, the evaluation transform, \
            the calibration and the source checkpoint.

            infer --model FILE and estimate-acc --checkpoint FILE run the exported subnet (its \
            arch only). Written under a temporary name and renamed.

            --format onnx (the default for an output ending in .onnx) writes an ONNX model \
            (opset 17) of the subnet's inference graph instead: input 'input' float \
            [N, 3, R, R] (NCHW, RGB normalised with the metadata's mean and std), output \
            'logits' [N, classes]; BatchNormalization nodes with the (recalibrated) running \
            statistics, or with --fold-bn none, the BN folded into the convolutions. The \
            same metadata is in the model's metadata_props.

            Examples:
              export-subnet --checkpoint supernet.safetensors.lz4 --arch @best.jsonl --calib data/train --calib-batches 16 -o best.safetensors.lz4
              export-subnet --checkpoint supernet.safetensors.lz4 --arch @best.jsonl --calib data/train --fold-bn -o best.onnx
            """)

    @OptionGroup var checkpointOptions: CheckpointOptions

    @Option(help: ArgumentHelp("The subnet: an arch JSON object, or @FILE for the first arch line of a file ('@-': stdin).", valueName: "json|@file"))
    var arch: String

    @Option(help: ArgumentHelp("Recalibrate the subnet's BN statistics on these shards first (recommended).", valueName: "shards"))
    var calib: String?

    @OptionGroup var batches: EvaluationBatchOptions

    @Option(help: "Evaluation transform of the calibration images, recorded in the model: auto (the one matching the checkpoint's training), eval or resize.")
    var transform: EvaluationTransformChoice = .auto

    @Option(name: .shortAndLong, help: ArgumentHelp("The model file to write (.safetensors.lz4, .safetensors uncompressed, or .onnx).", valueName: "file"))
    var output: String

    @Option(help: "Model format: safetensors (the official static subnet's state_dict) or onnx (default: onnx for an output ending in .onnx, else safetensors).")
    var format: ModelFormat?

    @Flag(name: .customLong("fold-bn"), help: "ONNX: fold every BatchNorm into the convolution before it (one Conv with a bias instead of Conv and BatchNormalization).")
    var foldBN = false

    enum ModelFormat: String, ExpressibleByArgument, CaseIterable {
        case safetensors, onnx
    }

    var chosenFormat: ModelFormat { format ?? (output.hasSuffix(".onnx") ? .onnx : .safetensors) }

    func validate() throws {
        if foldBN && chosenFormat != .onnx {
            throw ValidationError("--fold-bn goes with --format onnx: the safetensors model keeps the official static subnet's BatchNorm tensors")
        }
    }

    @OptionGroup var threads: ThreadOptions

    mutating func execute() throws {
        var export = SubnetExport(checkpointPath: checkpointOptions.checkpoint)
        export.spacePath = checkpointOptions.space
        export.calibrationPath = calib
        export.calibrationBatches = batches.calibBatches
        export.batchSize = batches.batchSize
        export.transform = transform
        export.threads = threads.count
        export.format = chosenFormat == .onnx ? .onnx(foldBatchNorm: foldBN) : .safetensors
        let checkpoint = try export.loadCheckpoint()
        let subnet = try ArchArgument.read(arch, in: checkpoint.space)
        let result = try export.export(subnet, from: checkpoint)
        for w in result.warnings { Diagnostics.warning(w) }
        let what: String
        switch result.model {
        case let .tensors(file):
            try file.write(to: output, compressed: !output.hasSuffix(".safetensors") || output.hasSuffix(".lz4"))
            what = "\(file.names.count) tensors"
        case let .onnx(data):
            try writeFileAtomically(output, bytes: [UInt8](data))
            what = "ONNX opset \(ONNXExport.opset), \(data.count) bytes\(foldBN ? ", BN folded" : "")"
        }
        Diagnostics.info("wrote \(output): \(what), \(subnet.flops(in: checkpoint.space).roundedTo(2)) MFLOPs, \(subnet.resolution) px, transform \(result.transform.rawValue)")
    }
}
