import Foundation

/// Where the tests find what lies outside the package: the repository (pipelines/,
/// Scripts/), the shared folder beside it, and the official reference data in it
/// (`$ALPHANET_REFERENCE_DIR` overrides the last).
public enum Paths {
    /// The repository root (this file is Sources/TestSupport/Paths.swift).
    public static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    /// ../shared beside the repository.
    public static let shared = URL(fileURLWithPath: repo).deletingLastPathComponent().appendingPathComponent("shared").path
    public static let reference = ProcessInfo.processInfo.environment["ALPHANET_REFERENCE_DIR"] ?? shared + "/reference"
    public static let oracle = shared + "/oracle/oracle.py"
    public static func space(_ name: String) -> String { repo + "/pipelines/spaces/\(name).json" }
}
