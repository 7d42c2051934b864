#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import System

/// Messages and progress on stderr, each line prefixed with the tool name.
public enum Diagnostics {
    /// The tool's name: the basename of the executable that is running.
    static let toolName: String = {
        let path = CommandLine.arguments.first ?? "alphanet"
        return path.split(separator: "/").last.map(String.init) ?? path
    }()
    private static let lock = Mutex(())

    public static var name: String { toolName }

    public static func error(_ message: String) { write("\(toolName): error: \(message)\n") }
    public static func warning(_ message: String) { write("\(toolName): warning: \(message)\n") }
    public static func info(_ message: String) { write("\(toolName): \(message)\n") }

    public static var stderrIsTerminal: Bool { FileDescriptor.standardError.isTerminal }

    /// A progress line that overwrites itself on a terminal and is silent otherwise.
    public static func progress(_ message: String) {
        guard stderrIsTerminal else { return }
        write("\r\u{1B}[K\(toolName): \(message)")
    }

    public static func endProgress() {
        guard stderrIsTerminal else { return }
        write("\r\u{1B}[K")
    }

    static func write(_ s: String) {
        lock.withLock { _ in
            let bytes = Array(s.utf8)
            bytes.withUnsafeBytes { _ = FileDescriptor.standardError.writeAll($0) }
        }
    }
}

func ignoreSigpipe() { signal(SIGPIPE, SIG_IGN) }
