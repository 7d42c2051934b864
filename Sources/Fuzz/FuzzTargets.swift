import DataPipeline
import FileFormats
import NASCore
import Foundation
import Supernet
import System
import Training

/// The inputs a user hands the tools, as fuzz targets: each takes arbitrary bytes and
/// must return or throw one of the library's errors, never trap, hang or exhaust
/// memory. `Scripts/fuzz` builds them with libFuzzer (`-sanitize=fuzzer`) and runs
/// them; built normally, `fuzz-inputs TARGET FILE...` replays files through the same
/// code (the tests run it over the seed corpus in Tests/FuzzCorpus/).
enum FuzzTarget: String, CaseIterable {
    /// Tensor files, plain or LZ4, and tensor-file streams (shards, checkpoints).
    case tensor
    /// JSON lines of archs, checked against the micro space.
    case archLines = "arch-lines"
    /// Checkpoints of the micro space: tensors, metadata, training options.
    case checkpoint
    /// JPEG and PNG decoding, at full size and with DCT scaling.
    case image

    /// The small space the arch and checkpoint targets use (Tests/FuzzCorpus/micro.json).
    static let space: SearchSpace? = {
        let path = ProcessInfo.processInfo.environment["FUZZ_SPACE"] ?? "Tests/FuzzCorpus/micro.json"
        return try? SearchSpace(contentsOf: path)
    }()

    /// Runs the input through the target; true when it was accepted as valid (a
    /// seed must be, so the fuzzer starts from inputs that reach deep code).
    @discardableResult
    func run(_ bytes: [UInt8]) -> Bool {
        switch self {
        case .tensor:
            let plain = (try? TensorFile(bytes: bytes)) != nil
            var stream = TensorStreamReader(bytes: bytes, sourceName: "fuzz")
            var streamed = 0
            for _ in 0..<64 { guard (try? stream.next()) != nil else { break }; streamed += 1 }
            return plain || streamed > 0
        case .archLines:
            guard let space = FuzzTarget.space else { preconditionFailure("FUZZ_SPACE: no space") }
            var valid = 0
            for line in bytes.split(separator: 0x0A) {
                guard let json = try? Array(line).withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }),
                      let arch = try? Arch(json: json) else { continue }
                if (try? arch.validate(in: space)) != nil {
                    _ = arch.flops(in: space)
                    _ = arch.params(in: space)
                    valid += 1
                }
            }
            return valid > 0
        case .checkpoint:
            guard let space = FuzzTarget.space else { preconditionFailure("FUZZ_SPACE: no space") }
            guard let file = try? TensorFile(bytes: bytes), let c = try? Checkpoint(file: file, space: file.metadata["space"] == nil ? space : nil) else { return false }
            if let options = c.training?.info["options"] { return (try? TrainingOptions(json: options)) != nil }
            return true
        case .image:
            let full = (try? ImageCodec.decode(bytes)) != nil
            let scaled = (try? ImageCodec.decode(bytes, minimumShortSide: 16)) != nil
            return full && scaled
        }
    }
}

#if FUZZING
/// The target `FUZZ_TARGET` names (libFuzzer runs one per process).
nonisolated(unsafe) var selected: FuzzTarget?

func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<FuzzArgv?>) -> Int32 {
    selected = ProcessInfo.processInfo.environment["FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:))
    guard selected != nil else {
        FileHandle.standardError.write(Data("fuzz-inputs: set FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue))\n".utf8))
        exit(64)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected?.run(bytes)
    return 0
}

public typealias FuzzArgv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<FuzzArgv?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point as `<module>_main`; libFuzzer's driver runs
/// from here (its own `main` is then not linked).
@_cdecl("fuzz_inputs_main")
public func fuzzInputsMain(_ argc: Int32, _ argv: FuzzArgv?) -> Int32 {
    var count = argc
    var vector = argv
    _ = fuzzInitialize(&count, &vector)
    return LLVMFuzzerRunDriver(&count, &vector, { data, size in fuzzOne(data, size) })
}
#else
@main
struct Replay {
    /// `fuzz-inputs [--mutate N] TARGET FILE|DIR...`: runs every file through the target,
    /// and with --mutate N also N deterministic mutants of each (truncations, flipped and
    /// overwritten bytes, seeded by the file's index); exit 0 when each returned (a trap
    /// fails the process, naming the file last printed). Prints the inputs, how many were
    /// accepted as valid, and the mutants run.
    static func main() {
        var args = CommandLine.arguments.dropFirst()
        if args.first == "--write-seeds", let dir = args.dropFirst().first {
            do { try writeSeeds(dir) } catch { FileHandle.standardError.write(Data("fuzz-inputs: \(error)\n".utf8)); exit(1) }
            return
        }
        var mutants = 0
        if args.first == "--mutate" {
            guard let n = args.dropFirst().first.flatMap({ Int($0) }), n >= 0 else { usage() }
            mutants = n
            args = args.dropFirst(2)
        }
        guard let name = args.first, let target = FuzzTarget(rawValue: name) else { usage() }
        var count = 0, accepted = 0, mutated = 0
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            let files = isDir.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
            for f in files {
                FileHandle.standardError.write(Data("fuzz-inputs: \(name) \(f)\n".utf8))
                guard let bytes = try? readWholeFile(f) else { continue }
                if target.run(bytes) { accepted += 1 }
                var random = SeededRandom(seed: UInt64(count))  // deterministic: a failure replays
                for _ in 0..<mutants where !bytes.isEmpty {
                    target.run(mutate(bytes, &random))
                    mutated += 1
                }
                count += 1
            }
        }
        print("\(name): \(count) inputs (\(accepted) accepted), \(mutated) mutants, all returned")
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: fuzz-inputs [--mutate N] \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE|DIR...\n".utf8))
        exit(64)
    }

    /// One mutant: a truncation, or 1-8 bytes flipped or set to 0x00/0xFF/0x7F.
    static func mutate(_ bytes: [UInt8], _ random: inout SeededRandom) -> [UInt8] {
        var out = bytes
        if random.next() % 4 == 0 { return Array(out.prefix(Int(random.next() % UInt64(out.count)))) }
        for _ in 0...(random.next() % 8) {
            let i = Int(random.next() % UInt64(out.count))
            switch random.next() % 4 {
            case 0: out[i] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
            case 1: out[i] = 0
            case 2: out[i] = 0xFF
            default: out[i] = 0x7F
            }
        }
        return out
    }
}

/// `fuzz-inputs --write-seeds DIR`: the seed corpus of every target, small valid inputs
/// (DIR/micro.json must hold the micro space). Committed as Tests/FuzzCorpus.
func writeSeeds(_ dir: String) throws {
    let space = try SearchSpace(contentsOf: dir + "/micro.json")
    func write(_ target: FuzzTarget, _ name: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: dir + "/" + target.rawValue, withIntermediateDirectories: true)
        try writeFileAtomically(dir + "/\(target.rawValue)/\(name)", bytes: bytes)
    }
    // Tensor files: a 2-image shard, plain and LZ4, and a stream of two.
    var shard = TensorFile(metadata: ["split": "train", "size": "4", "classes": "[\"a\",\"b\"]"])
    shard["images"] = Tensor((0..<(2 * 4 * 4 * 3)).map { UInt8($0) }, shape: [2, 4, 4, 3])
    shard["labels"] = Tensor([Int32(0), 1], shape: [2])
    try write(.tensor, "shard.safetensors", shard.serialized(compressed: false))
    try write(.tensor, "shard.safetensors.lz4", shard.serialized(compressed: true))
    try write(.tensor, "stream", shard.serialized(compressed: true) + shard.serialized(compressed: true))
    // Arch lines: the min and max subnets and a mutated line.
    let lines = [space.minArch.merged(), space.maxArch.merged(), space.minArch.merged(into: .object([("acc1", .double(50))]))]
    try write(.archLines, "archs.jsonl", Array(lines.map { $0.jsonText + "\n" }.joined().utf8))
    // A checkpoint with training state, and a plain state_dict.
    let weights = SupernetInitializer.initialWeights(space: space, seed: 0)
    let state = TrainingState(momentum: [Float](repeating: 0, count: weights.layout.parameterCount), step: 3,
                              randomState: [1, 2, 3, 4], info: .object([("options", TrainingOptions().json)]))
    try write(.checkpoint, "checkpoint.safetensors.lz4", Checkpoint(space: space, weights: weights, training: state).tensorFile().serialized(compressed: true))
    var plain = Checkpoint(space: space, weights: weights).tensorFile()
    plain.metadata = [:]
    try write(.checkpoint, "state-dict.safetensors", plain.serialized(compressed: false))
    // Images: RGB and grey JPEG, CMYK JPEG, RGB and RGBA PNG.
    let rgb = (0..<(12 * 8 * 3)).map { UInt8(($0 * 37) % 256) }
    try write(.image, "rgb.jpg", ImageCodec.encodeJPEG(pixels: rgb, width: 12, height: 8))
    try write(.image, "grey.jpg", ImageCodec.encodeJPEG(pixels: Array(rgb.prefix(96)), width: 12, height: 8, channels: 1))
    try write(.image, "cmyk.jpg", ImageCodec.encodeJPEG(pixels: (0..<(8 * 8 * 4)).map { UInt8($0 % 256) }, width: 8, height: 8, channels: 4))
    try write(.image, "rgb.png", ImageCodec.encodePNG(pixels: rgb, width: 12, height: 8))
    try write(.image, "rgba.png", ImageCodec.encodePNG(pixels: (0..<(8 * 8 * 4)).map { UInt8($0 % 256) }, width: 8, height: 8, channels: 4))
}
#endif
