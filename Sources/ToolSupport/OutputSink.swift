#if canImport(Glibc)
import Glibc
#endif
import FileFormats

/// Buffered writing to a file descriptor that reports EPIPE as `BrokenPipe`.
/// Used from one thread at a time (the tool's main thread).
public final class FDWriter: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private let capacity: Int
    public let name: String

    init(fd: Int32, name: String, capacity: Int = 1 << 16) {
        self.fd = fd
        self.name = name
        self.capacity = capacity
        buffer.reserveCapacity(capacity)
    }

    public func write(_ s: String) throws {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= capacity { try flush() }
    }

    public func write(bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= capacity { try flush() }
    }

    public func flush() throws {
        var off = 0
        defer { buffer.removeFirst(off) }
        while off < buffer.count {
            let w = buffer.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.write(fd, base + off, raw.count - off)
            }
            if w < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { off = buffer.count; throw BrokenPipe() }
                throw ToolError.failure("cannot write: \(String(cString: strerror(errno)).lowercased())", in: name)
            }
            off += w
        }
    }

    func flushIgnoringErrors() { try? flush() }
}

/// The process's stdout, buffered. Tools write data only here.
public enum StandardOutput {
    public static let shared = FDWriter(fd: 1, name: "<stdout>")
}

/// Where a tool's data output goes: stdout for nil or "-", else a file written
/// under a temporary name and renamed by `commit()`, so an interrupted run
/// never leaves a half-written file under the final name.
public final class OutputSink {
    public let path: String?
    public let writer: FDWriter
    private let tmpPath: String?
    private var committed = false

    public init(path: String?) throws {
        if let path, path != "-" {
            let tmp = "\(path).tmp-\(getpid())"
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else {
                throw ToolError.failure("cannot create output: \(String(cString: strerror(errno)).lowercased())", in: path)
            }
            self.path = path
            tmpPath = tmp
            writer = FDWriter(fd: fd, name: path)
        } else {
            self.path = nil
            tmpPath = nil
            writer = StandardOutput.shared
        }
    }

    public func write(_ s: String) throws { try writer.write(s) }

    public func writeLine(_ value: JSONValue) throws {
        var s = value.jsonText
        s += "\n"
        try writer.write(s)
    }

    /// Flushes; for a file, fsyncs and renames it to its final name.
    public func commit() throws {
        try writer.flush()
        guard let tmpPath, let path, !committed else { return }
        committed = true
        guard fsync(writer.fd) == 0, close(writer.fd) == 0 else {
            unlink(tmpPath)
            throw ToolError.failure("cannot write output: \(String(cString: strerror(errno)).lowercased())", in: path)
        }
        guard rename(tmpPath, path) == 0 else {
            unlink(tmpPath)
            throw ToolError.failure("cannot rename output into place: \(String(cString: strerror(errno)).lowercased())", in: path)
        }
    }

    deinit {
        if let tmpPath, !committed {
            close(writer.fd)
            unlink(tmpPath)
        }
    }
}
