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

/// A tool (or mpirun) running in the background: stdout through a pipe that the test
/// reads line by line (one line a step with --log-every 1), stderr into `<tag>.err` in
/// the harness directory.
struct BackgroundProcess {
    let process: Process
    let stdout: FileHandle

    init(process: Process, stdout: FileHandle) {
        self.process = process
        self.stdout = stdout
    }

    /// Starts `path args` in the harness directory, stdin empty.
    init(_ path: String, _ args: [String], in h: ToolHarness, stderrTag tag: String, environment: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: h.dir)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let err = URL(fileURLWithPath: h.path("\(tag).err"))
        try Data().write(to: err)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try out.fileHandleForWriting.close()  // ours: the child holds its own copy
        self.init(process: p, stdout: out.fileHandleForReading)
    }

    /// Blocks until the child has written `count` lines, and returns them. The test
    /// acts on what the child has done, never on how long it has run: there is no
    /// polling, and the only clock is a watchdog that kills a child still short of
    /// `count` lines after `hangLimit` seconds, so that a hang ends the read (EOF) as a
    /// failed expectation instead of a stuck test.
    func waitForLines(_ count: Int, hangLimit: Double = 600) -> [String] {
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + hangLimit, execute: watchdog)
        defer { watchdog.cancel() }
        var data = Data()
        while data.count(where: { $0 == UInt8(ascii: "\n") }) < count {
            let chunk = stdout.availableData
            if chunk.isEmpty { break }  // EOF: the child exited (or the watchdog killed it)
            data.append(chunk)
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Reads stdout to its end (so the child never blocks on a full pipe) and waits
    /// for the child to exit.
    func finish() {
        _ = stdout.readDataToEndOfFile()
        process.waitUntilExit()
    }

    /// `finish()` with a watchdog that kills a child still running after `hangLimit`
    /// seconds; the exit status and the seconds it took.
    func finish(hangLimit: Double) -> (status: Int32, seconds: Double) {
        let start = Date()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + hangLimit, execute: watchdog)
        defer { watchdog.cancel() }
        finish()
        return (process.terminationStatus, Date().timeIntervalSince(start))
    }

    /// The child's own children whose command name starts with `name` (mpirun's ranks).
    func children(named name: String) -> [Int32] {
        let pid = process.processIdentifier
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.filter { child in
            ((try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8)) ?? "").hasPrefix(name)
        }
    }
}
