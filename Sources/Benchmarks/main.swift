// Benchmarks: `Benchmarks <suite> [options]`, one JSON object per line on stdout
// (search prints a Markdown table). Run through `Scripts/bench <suite>`
// (release build, AVX2 code generation).
import Foundation
import NASCore
import System

// The tools' allocator policy (ToolSupport's Tool.main applies it too).
ProcessMemory.keepFreedMemory()
BLASThreads.stopIdlePool()

let suites: [String: ([String]) -> Void] = [
    "kernels": { args in
        // --only GROUP[,GROUP...]: conv1x1, stem, depthwise, norm-act.
        let only = args.firstIndex(of: "--only").flatMap { $0 + 1 < args.count ? Set(args[$0 + 1].split(separator: ",").map(String.init)) : nil }
        KernelBench.run(only: only)
    },
    "search": { runSearchBench(arguments: $0) },
    "predictor": { runPredictorBench(arguments: $0) },
    "train-step": { runTrainStepBench(arguments: $0) },
    "infer": { runInferBench(arguments: $0) },
    "resume": { runResumeBench(arguments: $0) },
    "decode": { runDecodeBench(arguments: $0) },
]

let args = Array(CommandLine.arguments.dropFirst())
guard let name = args.first, let suite = suites[name] else {
    FileHandle.standardError.write(Data("Benchmarks: usage: Benchmarks <\(suites.keys.sorted().joined(separator: "|"))> [options]\n".utf8))
    exit(64)
}
suite(Array(args.dropFirst()))
