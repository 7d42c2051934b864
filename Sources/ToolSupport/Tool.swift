import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// A command-line tool of this project: ArgumentParser parsing plus the
/// DESIGN.md conventions. Conformers implement `execute()`; `main()` prints
/// usage errors as one `tool: error: ...` line (exit 64), help on stdout
/// (exit 0), and maps thrown `ToolError`s to their exit codes.
public protocol Tool: ParsableCommand {
    mutating func execute() throws
}

extension Tool {
    public mutating func run() throws {
        try runTool { try execute() }
    }

    public static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Glibc.exit(0)
            }
            let first = message.split(separator: "\n").first.map(String.init) ?? message
            let text = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
            Diagnostics.error("\(text) (see '\(Diagnostics.name) --help')")
            Glibc.exit(ExitStatus.usage.rawValue)
        }
        do {
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code != .success, !(error is ExitCode) {
                Diagnostics.error(fullMessage(for: error))
            }
            Glibc.exit(code.rawValue)
        }
        Glibc.exit(0)
    }
}
