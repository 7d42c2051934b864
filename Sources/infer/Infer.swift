import ArgumentParser
import FileFormats
import NASCore
import Supernet
import ToolSupport
import Training
#if canImport(Glibc)
import Glibc
#endif

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

    @Option(help: ArgumentHelp("Supernet checkpoint.", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Search space JSON (default: the one stored in the checkpoint).", valueName: "file"))
    var space: String?

    @Option(help: ArgumentHelp("The subnet: an arch JSON object, or @FILE for the first arch line of a file ('@-': stdin).", valueName: "json|@file"))
    var arch: String

    @Option(help: ArgumentHelp("Tensor file with an `images` tensor (a shard, or float32 [N,H,W,3]).", valueName: "file"))
    var images: String

    @Option(help: "BatchNorm statistics: running (the checkpoint's, or recalibrated with --calib) or batch (each batch's own).")
    var bn: String = "running"

    @Option(help: ArgumentHelp("Recalibrate the subnet's BN statistics first on these shards, as estimate-acc does.", valueName: "shards"))
    var calib: String?

    @Option(name: .customLong("calib-batches"), help: "Calibration batches with --calib.")
    var calibBatches = 64

    @Option(name: .customLong("calib-batch-size"), help: "Images per calibration batch with --calib.")
    var calibBatchSize = 256

    @Option(help: "Input transform: resize (bicubic to the arch's resolution) or eval (shards only: resize to resolution/0.875 and centre-crop, as estimate-acc --transform eval). --calib images take the same transform.")
    var transform: String = "resize"

    @Option(name: .customLong("batch-size"), help: "Images per forward pass.")
    var batchSize = 64

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the logits to this tensor file (.safetensors.lz4 or .safetensors).", valueName: "file"))
    var output: String?

    @Option(help: "Kernel threads (default: all cores).")
    var jobs: Int?

    func validate() throws {
        if EstimationInference.BNMode(rawValue: bn) == nil { throw ValidationError("--bn must be running or batch") }
        if batchSize < 1 || calibBatchSize < 1 || calibBatches < 1 { throw ValidationError("batch sizes and --calib-batches must be at least 1") }
        if !["resize", "eval"].contains(transform) { throw ValidationError("--transform must be resize or eval") }
        if calib != nil && bn == "batch" { throw ValidationError("--calib recalibrates the running statistics; it does not go with --bn batch") }
        if let j = jobs, j < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    mutating func execute() throws {
        let ckpt = try loadCheckpoint(checkpoint, space: space)
        let subnet = try readArch(in: ckpt.space)
        let input: InferenceImages
        do {
            if transform == "eval" {
                input = try InferenceImages(evalTransformOf: images, resolution: subnet.resolution)
            } else {
                let file: TensorFile
                do { file = try TensorFile(contentsOf: images) } catch { throw ToolError(error, path: images) }
                input = try InferenceImages(file: file, name: images)
            }
        } catch let error as EstimationError {
            throw ToolError(error.isData ? .dataError : .failure, error.message, location: error.location)
        }
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let model = Supernet(weights: ckpt.weights, space: ckpt.space, context: ComputeContext(workers: jobs ?? cores))
        if let calib {
            do {
                // Calibration images take the input's transform (eval, or the whole image).
                try EstimationInference.recalibrate(model: model, arch: subnet, calibration: calib, batchSize: calibBatchSize, batches: calibBatches,
                                                    transform: transform == "eval" ? .eval : .resize)
            } catch {
                throw ToolError(error.isData ? .dataError : .failure, error.message, location: error.location)
            }
        }
        let mode = EstimationInference.BNMode(rawValue: bn) ?? .running
        let logits = EstimationInference.logits(model: model, arch: subnet, images: input, batchSize: batchSize, bn: mode)
        let classes = ckpt.space.nClasses

        if let output {
            var outFile = TensorFile(metadata: [
                "arch": subnet.merged().jsonText,
                "bn": bn,
                "images": images,
            ])
            outFile["logits"] = Tensor(logits, shape: [input.count, classes])
            do {
                try outFile.write(to: output, compressed: !output.hasSuffix(".safetensors") || output.hasSuffix(".lz4"))
            } catch { throw ToolError(error, path: output) }
            Diagnostics.info("\(input.count) images: wrote \(output)")
            return
        }
        let out = StandardOutput.shared
        let top = Metrics.topK(logits: logits, classes: classes, k: min(5, classes))
        for i in 0..<input.count {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            let maxV = row.max() ?? 0
            let sum = row.reduce(0.0) { $0 + exp(Double($1 - maxV)) }
            var line: JSONValue = .object([("index", JSONValue(i))])
            line["top5"] = .array(top[i].map { c in
                var entry: JSONValue = .object([("class", JSONValue(c))])
                if c < input.classes.count { entry["name"] = .string(input.classes[c]) }
                entry["prob"] = .double((exp(Double(row[row.startIndex + c] - maxV)) / sum).roundedTo(5))
                return entry
            })
            if let labels = input.labels {
                let l = Int(labels[i])
                line["label"] = JSONValue(l)
                if l >= 0 && l < input.classes.count { line["label_name"] = .string(input.classes[l]) }
            }
            try out.write(line.jsonText + "\n")
        }
    }

    /// The arch of --arch, checked against the space (any resolution: the
    /// forward pass runs at whatever resolution the arch names).
    func readArch(in space: SearchSpace) throws -> Arch {
        let json: JSONValue
        let location: String
        if arch.hasPrefix("@") {
            let path = String(arch.dropFirst())
            var reader = try JSONLinesReader(path: path)
            defer { reader.close() }
            guard let first = try reader.next() else { throw ToolError.data("no arch line", in: reader.sourceName) }
            json = first
            location = reader.location
        } else {
            do { json = try JSONValue.parse(arch) } catch { throw ToolError.usage("--arch: \(error)") }
            location = "--arch"
        }
        do {
            let a = try Arch(json: json)
            var check = a
            if let r = space.resolutions.first { check.resolution = r }
            try check.validate(in: space)
            guard a.resolution >= 8 && a.resolution <= 1024 else {
                throw ToolError.data("resolution: \(a.resolution) is outside 8...1024", in: location)
            }
            return a
        } catch let e as ToolError {
            throw e
        } catch {
            throw ToolError.data("\(error)", in: location)
        }
    }
}

