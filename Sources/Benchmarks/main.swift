// Benchmarks: `Benchmarks <suite> [options]`, one JSON object per line on stdout
// (search prints a Markdown table). Run through `Scripts/bench <suite>`
// (release build, AVX2 code generation).
import Foundation

let suites: [String: ([String]) -> Void] = [
    "kernels": { _ in KernelBench.run() },
    "search": { runSearchBench(arguments: $0) },
    "predictor": { runPredictorBench(arguments: $0) },
    "train-step": { runTrainStepBench(arguments: $0) },
    "infer": { runInferBench(arguments: $0) },
]

let args = Array(CommandLine.arguments.dropFirst())
guard let name = args.first, let suite = suites[name] else {
    FileHandle.standardError.write(Data("Benchmarks: usage: Benchmarks <\(suites.keys.sorted().joined(separator: "|"))> [options]\n".utf8))
    exit(64)
}
suite(Array(args.dropFirst()))
