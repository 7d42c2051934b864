import ArgumentParser
import DataPipeline
import Search
import Supernet
import System
import Training

// The options several tools share, each declared once with one default, and the
// library's enumerations as option values: `--help` lists their values and an
// unknown value is a usage error (exit 64) naming the allowed ones.

extension SamplerKind: ExpressibleByArgument {}
extension DistillationKind: ExpressibleByArgument {}
extension AugmentMode: ExpressibleByArgument {}
extension DataOrderKind: ExpressibleByArgument {}
extension LRScheduleKind: ExpressibleByArgument {}
extension EvaluationTransform: ExpressibleByArgument {}
extension EvaluationTransformChoice: ExpressibleByArgument {}
extension EstimationInference.BNMode: ExpressibleByArgument {}
extension PredictorModelKind: ExpressibleByArgument {}
extension MLPActivation: ExpressibleByArgument {}
extension SearchAlgorithmKind: ExpressibleByArgument {}
extension SearchObjectiveKind: ExpressibleByArgument {}

/// `--threads N`: the kernel threads of this process. (`--jobs`, where a tool has it,
/// counts work items at once: subnets for estimate-acc, images for pack-imagenet.)
public struct ThreadOptions: ParsableArguments {
    @Option(name: .customLong("threads"),
            help: ArgumentHelp("Kernel threads of this process (default: the cores it may use: its CPU affinity, as taskset, mpirun or Slurm set it).", valueName: "n"))
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// The threads to use.
    public var count: Int { threads ?? Cores.available }
}

/// `--checkpoint FILE [--space FILE]`: a supernet checkpoint to read.
public struct CheckpointOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Supernet checkpoint (train-supernet's, or an official state_dict converted to safetensors).", valueName: "file"))
    public var checkpoint: String

    @Option(help: ArgumentHelp("Search space JSON (default: the one stored in the checkpoint; needed for a plain state_dict).", valueName: "file"))
    public var space: String?

    public init() {}

    public func load() throws(Failure) -> Checkpoint { try loadCheckpoint(checkpoint, space: space) }
}

/// `--calib-batches N --batch-size N`: BatchNorm recalibration and evaluation batches.
public struct EvaluationBatchOptions: ParsableArguments {
    @Option(name: .customLong("calib-batches"), help: ArgumentHelp("BatchNorm recalibration batches per subnet (official: 64).", valueName: "n"))
    public var calibBatches = 64

    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Images per batch, for calibration and evaluation (official: 256).", valueName: "n"))
    public var batchSize = 256

    public init() {}

    public func validate() throws {
        if calibBatches < 1 { throw ValidationError("--calib-batches must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }
}
