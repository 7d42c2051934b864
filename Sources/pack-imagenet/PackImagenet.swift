import ArgumentParser
import DataPipeline
import Dispatch
import FileFormats
import Foundation
import ToolSupport
import System

@main
struct PackImagenet: Tool {
    static let configuration = CommandConfiguration(
        commandName: "pack-imagenet",
        abstract: "Decode, resize and centre-crop images into shards of uint8 RGB tensors.",
        discussion: """
            Inputs are recognised by their content: the ILSVRC2012 training tar (one tar per \
            WordNet id inside), the validation tar (flat JPEGs; give --labels), a directory or a \
            tar in ImageFolder layout (one folder per class), or an IDX images file with its IDX \
            labels file (MNIST layout, .gz allowed). The class index is the position in the sorted \
            class names (WordNet ids, folder names), or in --classes.

            Each image: JPEG (libjpeg-turbo, DCT-scaled when much larger than S) or PNG (libpng), \
            grey and CMYK converted to RGB, shorter side resized to S (bicubic, antialiased, as \
            Pillow), centre crop S x S. Shards <split>-00000.safetensors.lz4 hold `images` uint8 \
            [N,S,S,3] and `labels` int32 [N]; index.json lists counts, shards (bytes, SHA-256), \
            options and skipped files. The output directory is replaced as a whole at the end. \
            Without -o (or with -o -) the shards go to stdout as one stream, for \
            train-supernet --data -; a terminal is refused. A bad image is skipped with a \
            warning and recorded (exit 65 with --strict).

            Examples:
              pack-imagenet --size 224 -o data/train ILSVRC2012_img_train.tar
              pack-imagenet --split val --labels LOC_val_solution.csv -o data/val ILSVRC2012_img_val.tar
              pack-imagenet --split val --labels ILSVRC2012_validation_ground_truth.txt --labels synsets.txt -o data/val val.tar
              pack-imagenet --size 32 --classes names.txt -o data/train train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
              pack-imagenet --size 64 photos/ | train-supernet --data - ...
            """)

    @Option(help: ArgumentHelp("Stored image side S in pixels.", valueName: "S"))
    var size: Int = 224

    @Option(name: .customLong("shard-size"), help: ArgumentHelp("Images per shard.", valueName: "N"))
    var shardSize: Int = 1000

    @Option(help: ArgumentHelp("Split name for shard names and metadata (train or val).", valueName: "split"))
    var split: String = "train"

    @Option(help: ArgumentHelp("Validation labels: LOC_val_solution.csv, or ILSVRC2012_validation_ground_truth.txt together with a synset list (WordNet id per line in ILSVRC2012_ID order). Repeatable; recognised by content.", valueName: "file"))
    var labels: [String] = []

    @Option(help: ArgumentHelp("Class list, one name per line (first word); the line number is the class index. Default: sorted names found in the inputs.", valueName: "file"))
    var classes: String?

    @Option(help: ArgumentHelp("Images decoded at once, i.e. cores busy decoding (default: all cores).", valueName: "J"))
    var jobs: Int?

    @Option(help: ArgumentHelp("Pack at most N images.", valueName: "N"))
    var limit: Int?

    @Option(name: .customLong("dct-ratio"), help: ArgumentHelp("JPEG DCT scaling (1/2, 1/4, 1/8) keeps the decoded shorter side at least R*S; lower is faster and less exact (BENCHMARKS.md \"Data\" gives the measured quality and speed).", valueName: "R"))
    var dctRatio: Double = 2

    @Flag(help: "Stop with exit 65 at the first file that cannot be packed, instead of skipping it.")
    var strict = false

    @Option(name: .short, help: ArgumentHelp("Output directory; without -o, or with -o -, a shard stream on stdout.", valueName: "dir"))
    var output: String?

    @Argument(help: ArgumentHelp("Tars, directories, IDX files.", valueName: "input"))
    var inputs: [String]

    func validate() throws {
        if size < 1 || size > 4096 { throw ValidationError("--size must be between 1 and 4096") }
        if shardSize < 1 { throw ValidationError("--shard-size must be at least 1") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if split.isEmpty || split.contains("/") { throw ValidationError("--split must be a plain name such as train or val") }
        if inputs.isEmpty { throw ValidationError("give at least one input") }
        if !(dctRatio >= 1) { throw ValidationError("--dct-ratio must be at least 1") }
    }

    /// The output directory; nil: the shard stream on stdout.
    var directory: String? { output == "-" ? nil : output }

    mutating func execute() throws {
        if directory == nil, FileDescriptor.standardOutput.isTerminal {
            throw Failure.usage("refusing to write binary shards to a terminal; give -o DIR or pipe it")
        }
        var options = PackOptions()
        options.size = size
        options.shardSize = shardSize
        options.split = split
        options.jobs = jobs ?? Cores.available
        options.limit = limit
        options.strict = strict
        options.dctFactor = dctRatio
        options.labelFiles = labels
        if let classes {
            let text = try readWholeFile(classes)
            let names = String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline)
                .compactMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).first.map(String.init) }
            guard !names.isEmpty else { throw Failure.data("no class names", at: classes) }
            guard Set(names).count == names.count else { throw Failure.data("class names repeat", at: classes) }
            options.classes = names
        }
        var packer = ImagePacker(options: options)
        packer.onSkip = { Diagnostics.warning("\($0.source): skipped: \($0.reason)") }
        packer.onProgress = { p in
            var line = "\(p.images) images, \(p.seconds > 0 ? Int(Double(p.images) / p.seconds) : 0) images/s"
            if p.skipped > 0 { line += ", \(p.skipped) skipped" }
            if let e = p.expected, p.images > 0, e > p.images {
                line += ", ETA \(Int(p.seconds / Double(p.images) * Double(e - p.images)))s"
            }
            Diagnostics.progress(line)
        }
        let destination: ShardDestination
        if let directory {
            destination = .directory(directory)
        } else {
            let out = StandardOutput.shared
            destination = .stream { bytes in
                try out.write(bytes: bytes)
                try out.flush()
            }
        }
        let summary: PackSummary
        do {
            summary = try packer.run(inputs: inputs, to: destination)
        } catch {
            Diagnostics.endProgress()
            throw error
        }
        Diagnostics.endProgress()
        let rate = summary.seconds > 0 ? Double(summary.images) / summary.seconds : 0
        Diagnostics.info("\(summary.images) images in \(summary.shards.count) shards, \(summary.classes.count) classes, \(summary.skipped.count) skipped, \(String(format: "%.1f", summary.seconds)) s (\(Int(rate)) images/s) -> \(directory ?? "<stdout>")")
    }
}
