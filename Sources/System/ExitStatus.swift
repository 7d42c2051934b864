/// Exit codes shared by every tool (DESIGN.md): 0 ok, 1 runtime failure,
/// 64 bad usage, 65 bad input data.
public enum ExitStatus: Int32, Sendable {
    case ok = 0, failure = 1, usage = 64, dataError = 65
}

/// The one error model of the library: every error a library call throws says how
/// the tool that called it ends (`status`: 1 a runtime failure such as an
/// unreadable or unwritable file, 64 bad usage, 65 bad input data) and where the
/// problem is (`location`: a file, `file:line`, or an option such as `--arch`).
/// `ToolSupport.runTool` prints `description` as one line and exits with `status`;
/// no tool maps errors itself.
public protocol ReportableError: Error, CustomStringConvertible {
    var status: ExitStatus { get }
    /// The file (`path`, `path:line`) or option at fault; nil where the error says it all.
    var location: String? { get }
    /// What is wrong, without the location.
    var message: String { get }
}

extension ReportableError {
    public var location: String? { nil }

    /// `location: message`, always one line; control bytes and invalid UTF-8
    /// from the input are escaped so they never reach the terminal raw.
    public var description: String {
        let text = location.map { "\($0): \(message)" } ?? message
        return escapedForOneLine(text)
    }

    /// The same error at `location` (kept when it already names one).
    public func located(at location: String) -> Failure {
        Failure(status, message, at: self.location ?? location)
    }
}

/// A `ReportableError` for the cases that need no type of their own.
public struct Failure: ReportableError, Sendable, Equatable {
    public var status: ExitStatus
    public var message: String
    public var location: String?

    public init(_ status: ExitStatus, _ message: String, at location: String? = nil) {
        self.status = status
        self.message = message
        self.location = location
    }

    /// Bad input data (65) at `location`.
    public static func data(_ message: String, at location: String? = nil) -> Failure { Failure(.dataError, message, at: location) }
    /// A runtime failure (1): a file that cannot be read or written, a dead peer.
    public static func io(_ message: String, at location: String? = nil) -> Failure { Failure(.failure, message, at: location) }
    /// Bad usage (64): options that contradict each other or the input.
    public static func usage(_ message: String, at location: String? = nil) -> Failure { Failure(.usage, message, at: location) }
}

/// `text` on one line: newlines become spaces, other control bytes `\u{..}`.
public func escapedForOneLine(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n", "\r": out.append(" ")
        case "\t": out.append("\\t")
        case "\u{FFFD}": out.append("\\u{FFFD}")
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                out.append("\\u{\(String(scalar.value, radix: 16))}")
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}

/// A value of an input that is wrong, named by its field (`width`, `kernel_size`,
/// `width[3]`): bad data (65). The location (file:line) is added where it is known.
public struct FieldError: ReportableError, Sendable {
    public let field: String
    public let problem: String
    public init(field: String, message: String) {
        self.field = field
        problem = message
    }
    public var status: ExitStatus { .dataError }
    public var message: String { "\(field): \(problem)" }
}
