import ArgumentParser
import FileFormats
import Search
import Supernet
import ToolSupport
import System

@main
struct SampleSubnets: Tool {
    static let configuration = CommandConfiguration(
        commandName: "sample-subnets",
        abstract: "Sample subnets of a search space as arch JSON lines.",
        discussion: """
            Each choice (resolution, widths, depths, kernel sizes, expand ratios) is drawn \
            uniformly and independently, as the official AttentiveNAS sampler does. Every line \
            carries flops (MFLOPs per image, official formula) and params (millions). \
            The same seed gives the same lines.

            Examples:
              sample-subnets --space pipelines/spaces/tiny.json -n 512 --seed 1 > archs.jsonl
              sample-subnets --space pipelines/spaces/alphanet.json --flops-max 400 -n 100
              sample-subnets --space pipelines/spaces/alphanet.json --min --max
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Option(name: .short, help: "Number of uniformly sampled subnets (default: 1, or 0 when --min/--max is given).")
    var n: Int?

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Flag(help: "Also write the smallest subnet (every choice at its minimum), first.")
    var min = false

    @Flag(help: "Also write the largest subnet (every choice at its maximum).")
    var max = false

    @Option(name: .customLong("flops-min"), help: ArgumentHelp("Keep only subnets with at least this many MFLOPs.", valueName: "mflops"))
    var flopsMin: Double?

    @Option(name: .customLong("flops-max"), help: ArgumentHelp("Keep only subnets with at most this many MFLOPs.", valueName: "mflops"))
    var flopsMax: Double?

    @Flag(help: "Never write the same arch twice.")
    var unique = false

    @Option(name: .customLong("max-tries"), help: "Draws per subnet before giving up on the FLOPs bounds (or on --unique).")
    var maxTries: Int = 100_000

    func validate() throws {
        if let n, n < 0 { throw ValidationError("-n must be at least 0") }
        if let a = flopsMin, let b = flopsMax, a > b { throw ValidationError("--flops-min \(a) is above --flops-max \(b)") }
        if maxTries < 1 { throw ValidationError("--max-tries must be at least 1") }
    }

    mutating func execute() throws {
        let space = try spaceOptions.load()
        let out = StandardOutput.shared
        var seen = Set<Arch>()
        func emit(_ arch: Arch, _ flops: Double) throws {
            let line = arch.merged().with("flops", .double(flops.roundedTo(4))).with("params", .double(arch.params(in: space).roundedTo(4)))
            try out.write(line.jsonText + "\n")
        }
        if min {
            let a = space.minArch
            seen.insert(a)
            try emit(a, a.flops(in: space))
        }
        if max {
            let a = space.maxArch
            seen.insert(a)
            try emit(a, a.flops(in: space))
        }
        let count = n ?? ((min || max) ? 0 : 1)
        var sampler = ArchSampler(space: space, seed: seed)
        let lo = flopsMin ?? -.infinity, hi = flopsMax ?? .infinity
        for i in 0..<count {
            // One budget of draws per subnet, shared by the FLOPs bounds and
            // --unique, so an exhausted space fails after --max-tries draws.
            var found: (Arch, Double)?
            for _ in 0..<maxTries {
                let a = sampler.uniform()
                let f = a.flops(in: space)
                guard f >= lo && f <= hi else { continue }
                if unique && !seen.insert(a).inserted { continue }
                found = (a, f)
                break
            }
            guard let (a, f) = found else {
                let bounds = "[\(flopsMin.map { "\($0)" } ?? "-inf"), \(flopsMax.map { "\($0)" } ?? "inf")] MFLOPs"
                let why = unique ? "no new subnet within \(bounds)" : "no subnet within \(bounds)"
                throw Failure(.dataError, "\(why) after \(maxTries) draws (subnet \(i + 1) of \(count)); the space spans \(space.minArch.flops(in: space).roundedTo(1))-\(space.maxArch.flops(in: space).roundedTo(1)) MFLOPs", at: spaceOptions.space)
            }
            try emit(a, f)
        }
    }
}
