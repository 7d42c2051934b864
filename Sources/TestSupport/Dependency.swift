import Foundation
import Testing

/// Something outside the package that a test needs, and the one way a test says so:
/// `@Test(.requires(.python3))`.
///
/// Where the dependency is missing the test is skipped, and Swift Testing's report
/// names it and how to install it. Where it is required (`requiredBy`: under CI, i.e.
/// `CI=true`, for python3, Pillow and ../shared; `ALPHANET_REQUIRE_TORCH=1` for torch, which
/// `.ci/run` sets) a skip would hide a broken setup, so the trait's condition throws
/// instead and Swift Testing fails the test with that message. A test body never
/// checks for its dependencies itself: no early `return`, no silent pass.
public struct Dependency: Sendable {
    public var name: String
    /// How to get it, e.g. "Scripts/install-deps".
    public var hint: String
    public var isAvailable: Bool
    /// The setting that makes a missing dependency a failure (`CI=true`), or nil: skipped.
    public var requiredBy: String?

    public init(name: String, hint: String, isAvailable: Bool, requiredBy: String?) {
        self.name = name
        self.hint = hint
        self.isAvailable = isAvailable
        self.requiredBy = requiredBy
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// "CI=true" under CI (`CI` is `true` or `1`, as CI services set it), else nil.
    public static let inCI: String? = ProcessInfo.processInfo.environment["CI"].flatMap {
        ["true", "1"].contains($0.lowercased()) ? "CI=\($0)" : nil
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test where `dependency` is available; skips it with the reason where it is
    /// missing and optional; fails it with the reason where it is missing and required.
    public static func requires(_ dependency: Dependency) -> Self {
        .enabled("needs \(dependency.name) (\(dependency.hint))") {
            if dependency.isAvailable { return true }
            if let setting = dependency.requiredBy {
                throw Dependency.Missing(description: "\(dependency.name) is missing, and \(setting) requires it: \(dependency.hint)")
            }
            return false
        }
    }
}

extension Dependency {
    public static let python3 = Dependency(name: "python3 on PATH", hint: "Scripts/install-deps",
                                           isAvailable: succeeds(["python3", "-c", ""]), requiredBy: inCI)

    /// Pillow, for the tests that compare our image operations with it; required under
    /// CI (`.ci/run` installs it with `Scripts/install-deps --with-torch`).
    public static let pillow = Dependency(name: "python3 with Pillow", hint: "Scripts/install-deps --with-torch (pip install pillow)",
                                          isAvailable: succeeds(["python3", "-c", "import PIL"]), requiredBy: inCI)

    /// Checked by importing it, so it implies python3.
    public static let torch = Dependency(name: "python3 with torch", hint: "Scripts/install-deps --with-torch",
                                         isAvailable: succeeds(["python3", "-c", "import torch"]),
                                         requiredBy: ProcessInfo.processInfo.environment["ALPHANET_REQUIRE_TORCH"] == "1" ? "ALPHANET_REQUIRE_TORCH=1" : nil)

    /// onnxruntime and onnx (its checker), for the tests that run exported ONNX models;
    /// required under CI (`.ci/run` installs them with `Scripts/install-deps --with-torch`).
    public static let onnxruntime = Dependency(name: "python3 with onnxruntime and onnx", hint: "Scripts/install-deps --with-torch (pip install onnxruntime onnx)",
                                               isAvailable: succeeds(["python3", "-c", "import onnxruntime, onnx"]), requiredBy: inCI)

    /// The official reference files in ../shared/reference beside the repository, or in
    /// `$ALPHANET_REFERENCE_DIR`.
    public static let referenceData = Dependency(
        name: "the reference data in \(Paths.reference)",
        hint: "the project's shared folder beside the repository, or set ALPHANET_REFERENCE_DIR",
        isAvailable: FileManager.default.fileExists(atPath: Paths.reference + "/GENERATOR.md"),
        requiredBy: inCI)

    /// Mounting a small tmpfs (root with CAP_SYS_ADMIN), for full-disk tests: probed by
    /// mounting one.
    public static let tmpfs: Dependency = {
        let dir = NSTemporaryDirectory() + "tmpfs-probe-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ok = succeeds(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", dir]) && succeeds(["umount", dir])
        return Dependency(name: "mount -t tmpfs (root)", hint: "run the tests as root, as CI does", isAvailable: ok, requiredBy: inCI)
    }()

    /// OpenMPI's launcher, for the multi-process tests.
    public static let mpirun = Dependency(name: "mpirun on PATH", hint: "Scripts/install-deps (openmpi-bin)",
                                          isAvailable: succeeds(["mpirun", "--version"]), requiredBy: inCI)

    /// The evaluation oracle in ../shared, beside the repository.
    public static let oracle = Dependency(name: "../shared/oracle/oracle.py", hint: "the project's shared folder beside the repository",
                                          isAvailable: FileManager.default.fileExists(atPath: Paths.oracle), requiredBy: inCI)

    /// Whether `/usr/bin/env argv` (so found through PATH) exits 0.
    static func succeeds(_ argv: [String]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
