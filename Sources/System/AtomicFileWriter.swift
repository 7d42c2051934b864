#if canImport(Glibc)
import Glibc
#endif

/// A file written piece by piece under a temporary name (`path.tmp-PID`) and
/// renamed to `path` only when complete, so the final name only ever holds a whole
/// file: `append` as bytes are produced, then `commit` (fsync, rename, fsync the
/// directory) or `discard` (also what `deinit` does when not committed). A failed
/// write is remembered and reported by `commit`. The one atomic writer of the project.
public final class AtomicFileWriter {
    public let path: String
    public let temporaryPath: String
    private var fd: FileDescriptor?
    private var failure: Int32 = 0

    public init(path: String) throws(Failure) {
        self.path = path
        temporaryPath = "\(path).tmp-\(getpid())"
        do { fd = try FileDescriptor.open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC) } catch {
            throw .io("cannot create \(temporaryPath): \(errnoMessage())", at: path)
        }
    }

    deinit { discard() }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard let fd, failure == 0 else { return }
        failure = fd.writeAll(bytes)
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The errno of the first failed write, if any (0: none so far).
    public var writeError: Int32 { failure }

    public func commit() throws(Failure) {
        guard let fd else { throw .io("cannot write \(temporaryPath): already closed", at: path) }
        if failure == 0 { failure = fd.sync() }
        let closed = fd.close()
        if failure == 0 { failure = closed }
        self.fd = nil
        guard failure == 0 else {
            unlink(temporaryPath)
            throw .io("cannot write: \(errnoMessage(failure))", at: path)
        }
        guard rename(temporaryPath, path) == 0 else {
            let why = errnoMessage()
            unlink(temporaryPath)
            throw .io("cannot rename \(temporaryPath) into place: \(why)", at: path)
        }
        let dir = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) : "."
        if let d = try? FileDescriptor.open(dir.isEmpty ? "/" : dir, O_RDONLY) {
            _ = d.sync()
            d.close()
        }
    }

    /// Closes and removes the temporary file (nothing once committed).
    public func discard() {
        guard let fd else { return }
        fd.close()
        self.fd = nil
        unlink(temporaryPath)
    }
}

/// Writes `bytes` to `path` atomically (see `AtomicFileWriter`).
public func writeFileAtomically(_ path: String, bytes: [UInt8]) throws(Failure) {
    let file = try AtomicFileWriter(path: path)
    file.append(bytes)
    try file.commit()
}

/// Whether a file can be created in the directory of `path` (checked before long
/// work whose result is written there at the end).
public func checkWritableDirectory(of path: String) throws(Failure) {
    let dir = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) : "."
    guard access(dir.isEmpty ? "/" : dir, W_OK | X_OK) == 0 else {
        throw .io("cannot write to the directory \(dir.isEmpty ? "/" : dir): \(errnoMessage())", at: path)
    }
}
