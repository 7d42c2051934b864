import Foundation
import Testing

/// Runs the built tool binaries (they sit next to the test bundle in the
/// build directory) in a fresh temporary directory, removed when the last
/// reference goes (set KEEP_TOOLTEST_DIRS=1 to keep them for a look).
final class ToolHarness: Sendable {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "tooltest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    deinit {
        if ProcessInfo.processInfo.environment["KEEP_TOOLTEST_DIRS"] == nil { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// The build directory holding the tools: the directory of this test executable.
    static let binDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test binary lives inside X.xctest/ on some layouts.
        while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
        return url.path
    }()

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static func space(_ name: String) -> String { repo + "/pipelines/spaces/\(name).json" }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// Runs `tool` with `args`, feeding `stdin`, in the harness directory.
    @discardableResult
    func run(_ tool: String, _ args: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Result {
        try runExecutable(ToolHarness.binDir + "/" + tool, args, stdin: stdin.map { Data($0.utf8) }, environment: environment)
    }

    func runExecutable(_ path: String, _ args: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Result {
        let r = try ToolHarness.execute(path, args, in: dir, stdin: stdin, environment: environment)
        return Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
    }

    /// Runs `path args` in `cwd`, feeding `stdin` (none: an empty stdin) and
    /// reading stdout and stderr on separate threads so no pipe can fill up
    /// and block the child. The one process runner of the tool tests.
    static func execute(_ path: String, _ args: [String], in cwd: String, stdin: Data? = nil,
                        environment: [String: String] = [:]) throws -> (status: Int32, stdout: Data, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        let input = stdin ?? Data()
        let writer = Thread {
            inp.fileHandleForWriting.write(input)
            try? inp.fileHandleForWriting.close()
        }
        writer.start()
        nonisolated(unsafe) var errData = Data()
        let errDone = DispatchSemaphore(value: 0)
        Thread {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
        }.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: errData, as: UTF8.self))
    }

    /// Runs a shell command line in the harness directory (for pipes).
    @discardableResult
    func shell(_ command: String) throws -> Result {
        try runExecutable("/bin/bash", ["-c", "set -o pipefail; " + command], environment: ["PATH": ToolHarness.binDir + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")])
    }

    func path(_ name: String) -> String { dir + "/" + name }
}
