import ArgumentParser
import NASCore
#if canImport(Glibc)
import Glibc
#endif
import System

/// A command-line tool of this project: ArgumentParser parsing plus the
/// DESIGN.md conventions. Conformers implement `execute()`; `main()` prints
/// usage errors as one `tool: error: ...` line (exit 64), help on stdout
/// (exit 0), and maps thrown `ReportableError`s to their exit codes (`runTool`).
public protocol Tool: ParsableCommand {
    mutating func execute() throws
}

extension Tool {
    public mutating func run() throws {
        try runTool { try execute() }
    }

    public static func main() {
        ProcessMemory.keepFreedMemory()
        BLASThreads.stopIdlePool()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            handleExit(error)
        }
        Glibc.exit(0)
    }

    /// Prints what `error` calls for and exits: help on stdout (0), a usage
    /// error as one line (64); errors from `run()` were already reported.
    static func handleExit(_ error: Error) -> Never {
        if error is ExitCode {
            Glibc.exit(exitCode(for: error).rawValue)
        }
        let code = exitCode(for: error)
        let message = fullMessage(for: error)
        if code == .success {
            // --help: ArgumentParser leaves the printing to the caller.
            let text = message.isEmpty ? helpMessage() : message
            try? StandardOutput.shared.write(text + "\n")
            try? StandardOutput.shared.flush()
            Glibc.exit(0)
        }
        let first = message.split(separator: "\n").first.map(String.init) ?? message
        let text = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
        Diagnostics.error("\(text) (see '\(Diagnostics.name) --help')")
        Glibc.exit(code == .validationFailure ? ExitStatus.usage.rawValue : code.rawValue)
    }
}
