// swift-tools-version: 6.1
// AlphaNet weight-sharing NAS as small composable Unix tools.
// Layers: C shims -> NASCore (tensors, kernels, losses, optimizer) -> Supernet
// (space, archs, FLOPs, dynamic model, checkpoints) -> DataPipeline / Search ->
// ToolSupport -> one thin executable per tool.
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

/// One thin executable per tool: parse, call the library, print.
func tool(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: deps + ["ToolSupport", argumentParser], path: "Sources/\(name)")
}

let package = Package(
    name: "AlphaNetTools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // ONNX's protobuf messages (Sources/ONNXFormat/onnx.pb.swift, generated once by
        // Scripts/generate-onnx-swift and committed).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev liblz4-dev libarchive-dev libjpeg62-turbo-dev libpng-dev
        // libopenmpi-dev).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4"),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive"),
        // glibc declarations missing from Swift's Glibc module (mallopt, sched_getaffinity): System.
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        // OpenMPI (Debian: libopenmpi-dev), wrapped call by call: its handles are macros.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi"),
        // Software prefetch for the kernels (header only).
        .systemLibrary(name: "CCPUHints", path: "Sources/CCPUHints"),
        // libjpeg-turbo and libpng: libjpeg reports errors by longjmp, which Swift
        // cannot catch, so the JPEG and PNG calls live in this small C target,
        // which catches them with setjmp and returns status codes.
        // Vector loops in C: AVX-512 versions of NASCore's hottest loops (called only where
        // the CPU has AVX-512: NASCore's VectorISA), each with its own target attribute.
        .target(name: "CVectorKernels", path: "Sources/CVectorKernels",
                cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CImageCodecs", path: "Sources/CImageCodecs",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        // Libraries.
        // The one POSIX layer: file descriptors, the atomic file writer, the error model,
        // the worker pool, cores, signals, the allocator's settings.
        .target(name: "System", dependencies: ["CSystem"]),
        .target(name: "FileFormats", dependencies: ["CLZ4", "System"]),
        // The kernels are optimised in debug builds too: unoptimised SIMD generics run
        // 50-100x slower, which made the tool tests spend most of their time in them.
        .target(name: "NASCore", dependencies: ["COpenBLAS", "CCPUHints", "CVectorKernels", "System"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "Supernet", dependencies: ["NASCore", "FileFormats", "System"]),
        .target(name: "DataPipeline", dependencies: ["FileFormats", "NASCore", "CImageCodecs", "CArchive", "System"]),
        .target(name: "Search", dependencies: ["Supernet", "System"]),
        // The processes of an MPI job (mpirun, srun) and their collectives.
        .target(name: "Cluster", dependencies: ["CMPI", "System"]),
        // A subnet's inference graph as an ONNX model.
        .target(name: "ONNXFormat", dependencies: ["Supernet", "NASCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Training", dependencies: ["Supernet", "Search", "DataPipeline", "NASCore", "Cluster", "ONNXFormat", "System"]),
        // Tests only: the file-free reference generator of ../shared/reference (GENERATOR.md),
        // the reference files, paths outside the package, and the dependency traits.
        .target(name: "TestSupport"),
        .target(name: "ToolSupport", dependencies: ["FileFormats", "Supernet", "Training", "Search", "System", argumentParser]),
        .target(name: "Plotting", dependencies: ["FileFormats", "System"]),

        // Tools.
        tool("sample-subnets", ["Supernet", "Search"]),
        tool("count-flops", ["Supernet"]),
        tool("pack-imagenet", ["DataPipeline"]),
        tool("train-supernet", ["Training", "Supernet", "DataPipeline", "Search"]),
        tool("estimate-acc", ["Training", "Supernet", "DataPipeline", "Cluster"]),
        tool("fit-predictor", ["Search"]),
        tool("predict-acc", ["Search"]),
        tool("pareto-front", ["Search"]),
        tool("compare-runs", ["Search"]),
        tool("rank-correlation", ["Search", "Supernet"]),
        tool("evo-search", ["Search"]),
        tool("infer", ["Training", "Supernet", "DataPipeline"]),
        tool("export-subnet", ["Training", "Supernet", "ONNXFormat"]),
        tool("measure-latency", ["Training", "Supernet"]),
        tool("plot-pareto", ["Plotting", "FileFormats"]),

        // Fuzz targets of the inputs users hand the tools (Scripts/fuzz builds them with
        // libFuzzer; built normally, fuzz-inputs replays files through them).
        .executableTarget(name: "fuzz-inputs", dependencies: ["FileFormats", "NASCore", "Supernet", "DataPipeline", "Training", "System"], path: "Sources/Fuzz"),

        // Benchmarks (release build, run through Scripts/bench).
        .executableTarget(name: "Benchmarks", dependencies: ["NASCore", "Supernet", "DataPipeline", "Search", "Training", "FileFormats", "System"]),

        // Tests.
        .testTarget(name: "SystemTests", dependencies: ["System", "TestSupport"]),
        .testTarget(name: "FileFormatsTests", dependencies: ["FileFormats", "System", "TestSupport"]),
        .testTarget(name: "NASCoreTests", dependencies: ["NASCore", "System", "TestSupport"]),
        .testTarget(name: "SupernetTests", dependencies: ["Supernet", "NASCore", "Training", "System", "TestSupport"]),
        .testTarget(name: "DataPipelineTests", dependencies: ["DataPipeline", "System", "TestSupport"]),
        .testTarget(name: "SearchTests", dependencies: ["Search", "System", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Supernet", "DataPipeline", "NASCore", "System", "TestSupport"]),
        .testTarget(name: "ToolTests", dependencies: ["FileFormats", "System", "TestSupport"]),
    ]
)
