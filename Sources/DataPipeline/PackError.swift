import System

/// Why packing failed: bad input (65), bad usage (64), or trouble in the
/// environment such as an unwritable output (1).
public struct PackError: ReportableError, Sendable {
    public var status: ExitStatus
    /// The file (or archive member) at fault, if any.
    public var location: String?
    public var message: String

    public init(_ status: ExitStatus, _ message: String, location: String? = nil) {
        self.status = status
        self.message = message
        self.location = location
    }

    /// Another library error as a packing error, keeping its status; at `fallback` when it names no place.
    public init(_ error: some ReportableError, at fallback: String?) {
        self.init(error.status, error.message, location: error.location ?? fallback)
    }
}
