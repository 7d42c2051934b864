import ArgumentParser
import FileFormats

/// Exit codes shared by every tool (DESIGN.md): 0 ok, 1 runtime failure,
/// 64 bad usage, 65 bad input data.
public enum ExitStatus: Int32, Sendable {
    case ok = 0, failure = 1, usage = 64, dataError = 65
}

/// An error a tool reports as one line on stderr, prefixed with the tool name.
/// `location` names the file (and line) at fault.
public struct ToolError: Error, CustomStringConvertible, Sendable {
    public var status: ExitStatus
    public var location: String?
    public var message: String

    public init(_ status: ExitStatus, _ message: String, location: String? = nil) {
        self.status = status
        self.message = message
        self.location = location
    }

    public static func usage(_ message: String) -> ToolError { ToolError(.usage, message) }
    public static func data(_ message: String, in location: String) -> ToolError { ToolError(.dataError, message, location: location) }
    public static func failure(_ message: String, in location: String? = nil) -> ToolError { ToolError(.failure, message, location: location) }

    public var description: String {
        let text = location.map { "\($0): \(message)" } ?? message
        // One line, always.
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

extension ToolError {
    /// A tensor-file problem: bad contents are bad data (65), a missing or
    /// unreadable file is a runtime failure (1).
    public init(_ error: TensorFileError, path: String) {
        if case .io = error {
            self.init(.failure, error.description, location: path)
        } else {
            self.init(.dataError, error.description, location: path)
        }
    }
}

/// Thrown when stdout's reader has gone away (`| head`): the tool ends quietly.
public struct BrokenPipe: Error {}

/// Runs a tool body, turning thrown errors into one stderr line and an exit
/// code; a closed downstream pipe ends the tool quietly with status 0.
public func runTool(_ body: () throws -> Void) throws {
    ignoreSigpipe()
    do {
        try body()
        try StandardOutput.shared.flush()
    } catch is BrokenPipe {
        throw ExitCode(0)
    } catch let e as ToolError {
        StandardOutput.shared.flushIgnoringErrors()
        Diagnostics.error(e.description)
        throw ExitCode(e.status.rawValue)
    } catch let e as ValidationError {
        throw e
    } catch let e as ExitCode {
        throw e
    } catch {
        StandardOutput.shared.flushIgnoringErrors()
        Diagnostics.error("\(error)")
        throw ExitCode(ExitStatus.failure.rawValue)
    }
}
