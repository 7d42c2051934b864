// Benchmarks: `Benchmarks <suite>`, one JSON object per line on stdout.
// Run through `Scripts/bench <suite>` (release build, AVX2 code generation).
import Foundation

let suites: [String: () -> Void] = [
    "kernels": { KernelBench.run() },
]

let args = CommandLine.arguments.dropFirst()
guard let name = args.first, let suite = suites[name] else {
    FileHandle.standardError.write(Data("Benchmarks: usage: Benchmarks <\(suites.keys.sorted().joined(separator: "|"))>\n".utf8))
    exit(64)
}
suite()
