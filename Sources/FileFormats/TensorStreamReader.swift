#if canImport(Glibc)
import Glibc
#endif

func readFD(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ n: Int) -> Int {
    while true {
        let r = read(fd, buf, n)
        if r < 0 && errno == EINTR { continue }
        return r
    }
}

func currentErrno() -> Int32 { errno }

/// Reads a stream of tensor files back to back (each one LZ4 frame, or a plain
/// safetensors file) from a file descriptor, one file at a time, so a pipe of
/// shards is never held in memory whole.
public struct TensorStreamReader {
    private var reader: ByteReader
    public let sourceName: String
    public private(set) var index = 0

    /// `sourceName` names the stream in errors ("-" for stdin).
    public init(fileDescriptor: Int32, sourceName: String) {
        reader = ByteReader(fileDescriptor: fileDescriptor)
        self.sourceName = sourceName
    }

    public init(bytes: [UInt8], sourceName: String) {
        reader = ByteReader(bytes: bytes)
        self.sourceName = sourceName
    }

    /// The next tensor file, or nil at the end of the stream.
    public mutating func next() throws(TensorFileError) -> TensorFile? {
        try reader.fill(atLeast: 8)
        if reader.available == 0 { return nil }
        let file: TensorFile
        if reader.available >= 4, LZ4Frame.hasMagic(reader.peek(4)) {
            guard let bytes = try LZ4Frame.readFrame(from: &reader) else { return nil }
            file = try TensorFile(safetensors: bytes)
        } else {
            guard reader.available >= 8 else { throw .truncated("\(reader.available) stray bytes at the end of the stream") }
            let n = try TensorFile.headerLength(Array(reader.peek(8)))
            try reader.fill(atLeast: 8 + n)
            guard reader.available >= 8 + n else { throw .truncated("header of file \(index + 1) ends early") }
            guard let total = try TensorFile.totalSize(headerPrefix: Array(reader.peek(8 + n))) else {
                throw .truncated("header of file \(index + 1) ends early")
            }
            try reader.fill(atLeast: total)
            guard reader.available >= total else { throw .truncated("file \(index + 1) of the stream ends early") }
            file = try TensorFile(safetensors: reader.take(total))
        }
        index += 1
        return file
    }
}

extension TensorFile {
    /// Reads a tensor file from disk (LZ4 or plain, sniffed). Errors carry no
    /// path: callers prefix it (`ToolError` does).
    public init(contentsOf path: String) throws(TensorFileError) {
        try self.init(bytes: try readWholeFile(path))
    }

    /// Writes atomically: a temporary file in the same directory, fsync, rename.
    public func write(to path: String, compressed: Bool? = nil) throws(TensorFileError) {
        let compress = compressed ?? path.hasSuffix(".lz4")
        try writeFileAtomically(path, bytes: serialized(compressed: compress))
    }
}

/// Reads a whole file; ENOENT and friends become `.io` with the reason.
public func readWholeFile(_ path: String) throws(TensorFileError) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw .io(String(cString: strerror(errno)).lowercased()) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .io(String(cString: strerror(errno)).lowercased()) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw .io("is a directory") }
    // Read straight into the result, sized by fstat plus one byte to see the end in
    // the same pass (a zeroed 1 MiB bounce buffer per file cost pack-imagenet a memset
    // and 256 page faults per image). A file that grows meanwhile is read to its end.
    var failure: Int32 = 0
    let expected = max(0, Int(st.st_size))
    var out = [UInt8](unsafeUninitializedCapacity: expected + 1) { buf, count in
        count = 0
        while count < buf.count {
            let r = readFD(fd, buf.baseAddress! + count, buf.count - count)
            if r < 0 { failure = errno; return }
            if r == 0 { return }
            count += r
        }
    }
    if failure != 0 { throw .io(String(cString: strerror(failure)).lowercased()) }
    guard out.count > expected else { return out }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let r = chunk.withUnsafeMutableBytes { readFD(fd, $0.baseAddress, $0.count) }
        if r < 0 { throw .io(String(cString: strerror(errno)).lowercased()) }
        if r == 0 { return out }
        out.append(contentsOf: chunk[0..<r])
    }
}

/// Writes `bytes` to `path` so that the final name only ever holds a complete
/// file: write to `path.tmp-PID`, fsync, rename, fsync the directory.
public func writeFileAtomically(_ path: String, bytes: [UInt8]) throws(TensorFileError) {
    let file = try AtomicFileWriter(path: path)
    bytes.withUnsafeBytes { file.append($0) }
    try file.commit()
}

/// A file written piece by piece under a temporary name (`path.tmp-PID`) and
/// renamed to `path` only when complete: `append` as bytes are produced, then
/// `commit` (fsync, rename, fsync the directory) or `discard`. A failed write is
/// reported by `commit`.
public final class AtomicFileWriter {
    public let path: String
    private let tmp: String
    private var fd: Int32
    private var failure: Int32 = 0

    public init(path: String) throws(TensorFileError) {
        self.path = path
        tmp = "\(path).tmp-\(getpid())"
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .io("cannot create \(tmp): \(String(cString: strerror(errno)).lowercased())") }
    }

    deinit { discard() }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard fd >= 0, failure == 0, let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let w = Glibc.write(fd, base + off, bytes.count - off)
            if w < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            off += w
        }
    }

    public func commit() throws(TensorFileError) {
        guard fd >= 0 else { throw .io("cannot write \(tmp): already closed") }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        fd = -1
        guard failure == 0 else {
            unlink(tmp)
            throw .io("cannot write \(tmp): \(String(cString: strerror(failure)).lowercased())")
        }
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno)).lowercased()
            unlink(tmp)
            throw .io("cannot rename \(tmp) to \(path): \(why)")
        }
        let dir = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) : "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Closes and removes the temporary file (nothing if committed).
    public func discard() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        unlink(tmp)
    }
}
