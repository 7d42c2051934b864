import ArgumentParser
import FileFormats
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

            Example:
              export-subnet --checkpoint supernet.safetensors.lz4 --arch @best.jsonl --calib data/train --calib-batches 16 -o best.safetensors.lz4
            """)

    @OptionGroup var checkpointOptions: CheckpointOptions

    @Option(help: ArgumentHelp("The subnet: an arch JSON object, or @FILE for the first arch line of a file ('@-': stdin).", valueName: "json|@file"))
    var arch: String

    @Option(help: ArgumentHelp("Recalibrate the subnet's BN statistics on these shards first (recommended).", valueName: "shards"))
    var calib: String?

    @OptionGroup var batches: EvaluationBatchOptions

    @Option(help: "Evaluation transform of the calibration images, recorded in the model: auto (the one matching the checkpoint's training), eval or resize.")
    var transform: EvaluationTransformChoice = .auto

    @Option(name: .shortAndLong, help: ArgumentHelp("The model file to write (.safetensors.lz4, or .safetensors uncompressed).", valueName: "file"))
    var output: String

    @OptionGroup var threads: ThreadOptions

    mutating func execute() throws {
        var export = SubnetExport(checkpointPath: checkpointOptions.checkpoint)
        export.spacePath = checkpointOptions.space
        export.calibrationPath = calib
        export.calibrationBatches = batches.calibBatches
        export.batchSize = batches.batchSize
        export.transform = transform
        export.threads = threads.count
        let checkpoint = try export.loadCheckpoint()
        let subnet = try ArchArgument.read(arch, in: checkpoint.space)
        let result = try export.export(subnet, from: checkpoint)
        for w in result.warnings { Diagnostics.warning(w) }
        try result.file.write(to: output, compressed: !output.hasSuffix(".safetensors") || output.hasSuffix(".lz4"))
        Diagnostics.info("wrote \(output): \(result.file.names.count) tensors, \(subnet.flops(in: checkpoint.space).roundedTo(2)) MFLOPs, \(subnet.resolution) px, transform \(result.transform.rawValue)")
    }
}
