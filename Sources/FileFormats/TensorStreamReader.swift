#if canImport(Glibc)
import Glibc
#endif
import System

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
            guard let bytes = try LZ4Frame.readFrame(from: &reader, safetensors: true) else { return nil }
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
    /// Reads a tensor file from disk (LZ4 or plain, sniffed). Errors name the path:
    /// an unreadable file is a runtime failure (1), bad contents bad data (65).
    public init(contentsOf path: String) throws(Failure) {
        let bytes = try readWholeFile(path)
        do { try self.init(bytes: bytes) } catch { throw error.located(at: path) }
    }

    /// Writes atomically: a temporary file in the same directory, fsync, rename.
    public func write(to path: String, compressed: Bool? = nil) throws(Failure) {
        let compress = compressed ?? path.hasSuffix(".lz4")
        try writeFileAtomically(path, bytes: serialized(compressed: compress))
    }
}
