import ArgumentParser
import FileFormats
import NASCore
import Supernet
import ToolSupport
import Training
import System

@main
struct Infer: Tool {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run one subnet of a supernet checkpoint on images and write its logits or top-5 classes.",
        discussion: """
            --images is a tensor file with an `images` tensor [N, H, W, 3]: uint8 (a shard from \
            pack-imagenet; normalised with the ImageNet mean/std) or float32 (used as given). \
            Images whose size differs from the arch's resolution are resized bicubically, as the \
            official supernet does.

            With -o, writes a tensor file holding `logits` [N, classes] (written under a temporary \
            name and renamed). Without -o, prints one JSON line per image: its index, the top-5 \
            classes with probabilities (and class names from the shard metadata), and the label if \
            the file has one.

            Examples:
              infer --checkpoint demo/supernet.safetensors.lz4 --arch @best.jsonl --images demo/data/val/shard-00000.safetensors.lz4 | head
              infer --checkpoint C --arch '{"resolution":32,...}' --images x.safetensors -o logits.safetensors.lz4
            """)

    @Option(help: ArgumentHelp("Supernet checkpoint (train-supernet's, or an official state_dict converted to safetensors).", valueName: "file"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("Search space JSON (default: the one stored in the checkpoint; needed for a plain state_dict).", valueName: "file"))
    var space: String?

    @Option(help: ArgumentHelp("An exported subnet (export-subnet) to run instead of a checkpoint: its arch, its BN statistics, its evaluation transform by default.", valueName: "file"))
    var model: String?

    @Option(help: ArgumentHelp("The subnet: an arch JSON object, or @FILE for the first arch line of a file ('@-': stdin); with --model, default its own.", valueName: "json|@file"))
    var arch: String?

    @Option(help: ArgumentHelp("Tensor file with an `images` tensor (a shard, or float32 [N,H,W,3]).", valueName: "file"))
    var images: String

    @Option(help: "BatchNorm statistics: running (the checkpoint's, or recalibrated with --calib) or batch (each batch's own).")
    var bn: EstimationInference.BNMode = .running

    @Option(help: ArgumentHelp("Recalibrate the subnet's BN statistics first on these shards, as estimate-acc does.", valueName: "shards"))
    var calib: String?

    @OptionGroup var batches: EvaluationBatchOptions

    @Option(help: "Input transform: resize (bicubic to the arch's resolution) or eval (shards only: resize to resolution/0.875 and centre-crop, as estimate-acc --transform eval); default resize, or an exported model's own. --calib images take the same transform.")
    var transform: EvaluationTransform?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the logits to this tensor file (.safetensors.lz4 or .safetensors).", valueName: "file"))
    var output: String?

    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if calib != nil && bn == .batch { throw ValidationError("--calib recalibrates the running statistics; it does not go with --bn batch") }
        if (checkpoint == nil) == (model == nil) { throw ValidationError("give --checkpoint (a supernet) or --model (an exported subnet)") }
        if checkpoint != nil && arch == nil { throw ValidationError("--checkpoint needs --arch, the subnet to run") }
        if model != nil && space != nil { throw ValidationError("an exported model holds its space: drop --space") }
    }

    mutating func execute() throws {
        let ckpt: Checkpoint
        if let model {
            let file = try TensorFile(contentsOf: model)
            guard ExportedSubnet.isExported(file) else { throw Failure.data("not an exported subnet (export-subnet writes them; a checkpoint goes with --checkpoint)", at: model) }
            do { ckpt = try Checkpoint(file: file) } catch { throw error.located(at: model) }
        } else {
            ckpt = try loadCheckpoint(checkpoint ?? "", space: space)
        }
        let served = try ckpt.servedArch()
        let subnet: Arch
        if let arch {
            subnet = try ArchArgument.read(arch, in: ckpt.space)
            if let why = Checkpoint.refusal(of: subnet, served: served) {
                throw Failure.data(why, at: arch.hasPrefix("@") ? String(arch.dropFirst()) : "--arch")
            }
        } else {
            subnet = served?.arch ?? ckpt.space.maxArch
        }
        let transform = self.transform ?? ckpt.exportedMetadata["eval_transform"].flatMap(EvaluationTransform.init(rawValue:)) ?? .resize
        let input: InferenceImages
        if transform == .eval {
            input = try InferenceImages(evalTransformOf: images, resolution: subnet.resolution)
        } else {
            input = try InferenceImages(file: try TensorFile(contentsOf: images), name: images)
        }
        let model = Supernet(weights: ckpt.weights, space: ckpt.space, context: ComputeContext(workers: threads.count))
        if let calib {
            // Calibration images take the input's transform (eval, or the whole image).
            try EstimationInference.recalibrate(model: model, arch: subnet, calibration: calib, batchSize: batches.batchSize,
                                                batches: batches.calibBatches, transform: transform)
        }
        let logits = EstimationInference.logits(model: model, arch: subnet, images: input, batchSize: batches.batchSize, bn: bn)
        let classes = ckpt.space.nClasses

        if let output {
            var outFile = TensorFile(metadata: ["arch": subnet.merged().jsonText, "bn": bn.rawValue, "images": images])
            outFile["logits"] = Tensor(logits, shape: [input.count, classes])
            try outFile.write(to: output, compressed: !output.hasSuffix(".safetensors") || output.hasSuffix(".lz4"))
            Diagnostics.info("\(input.count) images: wrote \(output)")
            return
        }
        let out = StandardOutput.shared
        for p in Metrics.predictions(logits: logits, classes: classes, k: 5, labels: input.labels) {
            var line: JSONValue = .object([("index", JSONValue(p.index))])
            line["top5"] = .array(p.top.map { c in
                var entry: JSONValue = .object([("class", JSONValue(c.classIndex))])
                if c.classIndex < input.classes.count { entry["name"] = .string(input.classes[c.classIndex]) }
                entry["prob"] = .double(c.probability.roundedTo(5))
                return entry
            })
            if let l = p.label {
                line["label"] = JSONValue(l)
                if l >= 0 && l < input.classes.count { line["label_name"] = .string(input.classes[l]) }
            }
            try out.write(line.jsonText + "\n")
        }
    }
}
