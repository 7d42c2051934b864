#if canImport(Glibc)
import Glibc
#endif
import FileFormats
import Synchronization
import System

/// Buffered writing to stdout that reports EPIPE as `BrokenPipe`. Thread-safe:
/// whole writes are serialised, so lines written from several threads never interleave.
public final class FDWriter: Sendable {
    private let fd: FileDescriptor
    private let buffer = Mutex<[UInt8]>([])
    private let capacity: Int
    public let name: String

    init(fd: FileDescriptor, name: String, capacity: Int = 1 << 16) {
        self.fd = fd
        self.name = name
        self.capacity = capacity
    }

    public func write(_ s: String) throws {
        let full = buffer.withLock { b in
            b.append(contentsOf: s.utf8)
            return b.count >= capacity
        }
        if full { try flush() }
    }

    public func write(bytes: [UInt8]) throws {
        let full = buffer.withLock { b in
            b.append(contentsOf: bytes)
            return b.count >= capacity
        }
        if full { try flush() }
    }

    public func flush() throws {
        let failure: Int32 = buffer.withLock { b in
            defer { b.removeAll(keepingCapacity: true) }
            return b.withUnsafeBytes { fd.writeAll($0) }
        }
        if failure == EPIPE { throw BrokenPipe() }
        if failure != 0 { throw Failure.io("cannot write: \(errnoMessage(failure))", at: name) }
    }

    func flushIgnoringErrors() { try? flush() }
}

/// The process's stdout, buffered. Tools write data only here.
public enum StandardOutput {
    public static let shared = FDWriter(fd: .standardOutput, name: "<stdout>")
}

/// Where a tool's data output goes: stdout for nil or "-", else a file written
/// through `AtomicFileWriter` (a temporary name, renamed by `commit()`), so an
/// interrupted run never leaves a half-written file under the final name.
public final class OutputSink {
    public let path: String?
    private let file: AtomicFileWriter?
    private var pending: [UInt8] = []

    public init(path: String?) throws {
        if let path, path != "-" {
            self.path = path
            file = try AtomicFileWriter(path: path)
        } else {
            self.path = nil
            file = nil
        }
    }

    public func write(_ s: String) throws {
        guard let file else { return try StandardOutput.shared.write(s) }
        pending.append(contentsOf: s.utf8)
        if pending.count >= 1 << 16 {
            file.append(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    public func writeLine(_ value: JSONValue) throws {
        try write(value.jsonText + "\n")
    }

    /// Flushes; for a file, fsyncs and renames it to its final name.
    public func commit() throws {
        guard let file else { return try StandardOutput.shared.flush() }
        file.append(pending)
        pending.removeAll()
        try file.commit()
    }
}
