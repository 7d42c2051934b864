#if canImport(Glibc)
import Glibc
#endif

/// A POSIX file descriptor with the EINTR retries done once, here.
/// Does not close itself: the owner calls `close()` (stdin/stdout are never closed).
public struct FileDescriptor: Sendable, Equatable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    /// Opens `path`; a failure is a runtime failure (1) naming the path.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(Failure) -> FileDescriptor {
        while true {
            let fd = Glibc.open(path, flags, mode)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            if errno == EINTR { continue }
            throw .io("cannot open: \(errnoMessage())", at: path)
        }
    }

    /// One `read`, retried on EINTR: the byte count (0 at the end), or -1 with errno set.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let r = Glibc.read(rawValue, base, buffer.count)
            if r < 0 && errno == EINTR { continue }
            return r
        }
    }

    /// Reads until `buffer` is full or the end: the byte count, or -1 with errno set.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < buffer.count {
            let r = read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if r < 0 { return -1 }
            if r == 0 { break }
            done += r
        }
        return done
    }

    /// Writes all of `bytes`, retrying short writes and EINTR. Returns 0, or the errno
    /// of the failed write (EPIPE for a closed reader, ENOSPC for a full disk).
    @discardableResult
    public func writeAll(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard let base = bytes.baseAddress else { return 0 }
        var off = 0
        while off < bytes.count {
            let w = Glibc.write(rawValue, base + off, bytes.count - off)
            if w < 0 {
                if errno == EINTR { continue }
                return errno
            }
            off += w
        }
        return 0
    }

    /// `fsync`: 0, or the errno.
    public func sync() -> Int32 { fsync(rawValue) == 0 ? 0 : errno }

    /// `close`: 0, or the errno.
    @discardableResult
    public func close() -> Int32 { Glibc.close(rawValue) == 0 ? 0 : errno }

    public var isTerminal: Bool { isatty(rawValue) == 1 }
}

/// Reads a whole file into memory, sized by `fstat` (a file that grows meanwhile is
/// read to its end). Errors: a runtime failure (1) naming the path.
public func readWholeFile(_ path: String) throws(Failure) -> [UInt8] {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    defer { fd.close() }
    var st = stat()
    guard fstat(fd.rawValue, &st) == 0 else { throw .io("cannot read: \(errnoMessage())", at: path) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw .io("is a directory", at: path) }
    // Straight into the result, plus one byte to see the end in the same pass.
    var failure: Int32 = 0
    let expected = max(0, Int(st.st_size))
    var out = [UInt8](unsafeUninitializedCapacity: expected + 1) { buf, count in
        let r = fd.readFully(into: UnsafeMutableRawBufferPointer(buf))
        if r < 0 { failure = errno; count = 0 } else { count = r }
    }
    if failure != 0 { throw .io("cannot read: \(errnoMessage(failure))", at: path) }
    guard out.count > expected else { return out }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let r = chunk.withUnsafeMutableBytes { fd.read(into: $0) }
        if r < 0 { throw .io("cannot read: \(errnoMessage())", at: path) }
        if r == 0 { return out }
        out.append(contentsOf: chunk[0..<r])
    }
}
