import System
import CLZ4

/// LZ4 frame compression (the format of the `lz4` command-line tool), through
/// liblz4's frame API. Each C call is wrapped here once; its error code
/// becomes a thrown `TensorFileError.badCompression`.
public enum LZ4Frame {
    /// The first four bytes of every LZ4 frame: 0x184D2204, little-endian.
    public static let magic: [UInt8] = [0x04, 0x22, 0x4D, 0x18]

    public static func hasMagic<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.count >= 4 && zip(bytes.prefix(4), magic).allSatisfy { $0 == $1 }
    }

    /// One frame with content size and content checksum, so readers can
    /// pre-size their buffer and detect corruption.
    public static func compress(_ input: [UInt8], level: Int32 = 0) -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max4MB
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(input.count)
        prefs.compressionLevel = level
        let bound = LZ4F_compressFrameBound(input.count, &prefs)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                LZ4F_compressFrame(dst.baseAddress, bound, src.baseAddress, input.count, &prefs)
            }
        }
        // Compression into a buffer of the bound size cannot fail but for a bug.
        precondition(LZ4F_isError(n) == 0, "LZ4F_compressFrame: \(String(cString: LZ4F_getErrorName(n)))")
        out.removeLast(out.count - n)
        return out
    }

    /// Decompresses every frame in `input` (concatenated frames form one stream).
    /// With `safetensors`, the output is a safetensors file whose header is checked as
    /// soon as it is out, and whose size it bounds: a frame that decompresses beyond
    /// that size (a decompression bomb) stops there with an error.
    public static func decompress(_ input: [UInt8], safetensors: Bool = false) throws(TensorFileError) -> [UInt8] {
        var reader = ByteReader(bytes: input)
        var out: [UInt8] = []
        var bound = SafetensorsBound(enabled: safetensors)
        while try readFrame(from: &reader, into: &out, bound: &bound) {}
        return out
    }

    static func check(_ code: Int) throws(TensorFileError) {
        if LZ4F_isError(code) != 0 { throw .badCompression(String(cString: LZ4F_getErrorName(code))) }
    }

    /// Decodes exactly one frame from `reader`, consuming only its bytes, so the
    /// next frame of a stream stays in the reader. Nil at a clean end of input.
    static func readFrame(from reader: inout ByteReader, safetensors: Bool = false) throws(TensorFileError) -> [UInt8]? {
        var out: [UInt8] = []
        var bound = SafetensorsBound(enabled: safetensors)
        return try readFrame(from: &reader, into: &out, bound: &bound) ? out : nil
    }

    /// Decodes one frame from `reader`, appending to `out`; false at a clean end of input.
    static func readFrame(from reader: inout ByteReader, into out: inout [UInt8], bound: inout SafetensorsBound) throws(TensorFileError) -> Bool {
        try reader.fill(atLeast: 4)
        if reader.available == 0 { return false }
        guard reader.available >= 4, hasMagic(reader.peek(4)) else {
            throw .badCompression("no LZ4 frame magic at byte \(reader.consumed)")
        }
        var dctx: OpaquePointer?
        try check(LZ4F_createDecompressionContext(&dctx, UInt32(LZ4F_VERSION)))
        defer { LZ4F_freeDecompressionContext(dctx) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            try reader.fill(atLeast: 1)
            guard reader.available > 0 else { throw .truncated("LZ4 frame ends early at byte \(reader.consumed)") }
            var srcSize = reader.available
            var dstSize = chunk.count
            let hint = reader.withAvailable { src in
                chunk.withUnsafeMutableBytes { dst in
                    LZ4F_decompress(dctx, dst.baseAddress, &dstSize, src.baseAddress, &srcSize, nil)
                }
            }
            try check(hint)
            reader.skip(srcSize)
            out.append(contentsOf: chunk[0..<dstSize])
            try bound.check(out)
            if hint == 0 { return true }
            // More output may be pending even when no input was consumed.
            if srcSize == 0 && dstSize == 0 {
                try reader.fill(atLeast: reader.available + 1)
            }
        }
    }
}

/// The size a safetensors file may have, learnt from its header as soon as the header
/// is decompressed (its own length, then its tensors' data offsets).
struct SafetensorsBound {
    let enabled: Bool
    private(set) var limit: Int?

    init(enabled: Bool) { self.enabled = enabled }

    mutating func check(_ out: [UInt8]) throws(TensorFileError) {
        guard enabled else { return }
        if limit == nil, out.count >= 8 {
            let n = try TensorFile.headerLength(Array(out[0..<8]))
            if out.count >= 8 + n { limit = try TensorFile.totalSize(headerPrefix: Array(out[0..<(8 + n)])) }
        }
        if let limit, out.count > limit {
            throw .badCompression("decompresses beyond the \(limit) bytes its safetensors header describes")
        }
    }
}

/// A forward-only byte source over an in-memory buffer or a file descriptor,
/// reading from the descriptor in chunks and never holding more than the
/// unconsumed part of the current chunk plus what the caller asked for.
struct ByteReader {
    private var buffer: [UInt8]
    private var start = 0
    private let fd: Int32?
    private var atEnd: Bool
    private(set) var consumed = 0

    init(bytes: [UInt8]) {
        buffer = bytes
        fd = nil
        atEnd = true
    }

    init(fileDescriptor: Int32) {
        buffer = []
        fd = fileDescriptor
        atEnd = false
    }

    var available: Int { buffer.count - start }

    func peek(_ n: Int) -> ArraySlice<UInt8> { buffer[start..<(start + n)] }

    mutating func skip(_ n: Int) {
        start += n
        consumed += n
    }

    mutating func take(_ n: Int) -> [UInt8] {
        let out = Array(buffer[start..<(start + n)])
        skip(n)
        return out
    }

    func withAvailable<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        buffer.withUnsafeBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[start...])) }
    }

    /// Reads from the descriptor until `n` bytes are available or input ends.
    mutating func fill(atLeast n: Int) throws(TensorFileError) {
        guard let fd, !atEnd, available < n else { return }
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: max(1 << 16, n - buffer.count))
        while buffer.count < n {
            let r = chunk.withUnsafeMutableBytes { FileDescriptor(rawValue: fd).read(into: $0) }
            if r < 0 { throw .io("read error: \(errnoMessage())") }
            if r == 0 { atEnd = true; return }
            buffer.append(contentsOf: chunk[0..<r])
        }
    }
}

/// One LZ4 frame compressed piece by piece, so a writer can compress data as it
/// arrives: the frame header (content size given up front, content checksum) at
/// `init`, each `append` compressed as full 4 MiB blocks fill, the rest and the
/// checksum at `finish`. The frame is byte for byte the one `LZ4Frame.compress`
/// makes of the concatenated pieces, however they are split (tested).
public final class LZ4FrameCompressor {
    private var context: OpaquePointer?
    private var prefs = LZ4F_preferences_t()
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    /// Bytes of the frame written so far.
    public private(set) var count = 0
    private let contentSize: Int
    private var appended = 0

    /// - Precondition: exactly `contentSize` bytes are appended before `finish`.
    public init(contentSize: Int, level: Int32 = 0) {
        self.contentSize = contentSize
        // The frame parameters LZ4F_compressFrame chooses for the same content: the
        // smallest block size that holds it (up to 4 MiB), and independent blocks when
        // there is only one. (Not its autoFlush: that would end a block at each append.)
        let sizes: [(LZ4F_blockSizeID_t, Int)] = [(LZ4F_max64KB, 64 << 10), (LZ4F_max256KB, 256 << 10), (LZ4F_max1MB, 1 << 20)]
        let (id, blockSize) = sizes.first { contentSize <= $0.1 } ?? (LZ4F_max4MB, 4 << 20)
        prefs.frameInfo.blockSizeID = id
        if contentSize <= blockSize { prefs.frameInfo.blockMode = LZ4F_blockIndependent }
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(contentSize)
        prefs.compressionLevel = level
        var ctx: OpaquePointer?
        let created = LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))
        precondition(LZ4F_isError(created) == 0 && ctx != nil, "LZ4F_createCompressionContext failed")
        context = ctx
        capacity = LZ4F_compressFrameBound(contentSize, &prefs) + Int(LZ4F_HEADER_SIZE_MAX)
        buffer = .allocate(byteCount: capacity, alignment: 16)
        emit(bound: Int(LZ4F_HEADER_SIZE_MAX)) { dst, cap in LZ4F_compressBegin(self.context, dst, cap, &self.prefs) }
    }

    deinit {
        LZ4F_freeCompressionContext(context)
        buffer.deallocate()
    }

    /// The frame's bytes written so far (valid until the next call).
    public var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer, count: count) }

    /// Compresses `bytes` (buffered until a block is full).
    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        appended += bytes.count
        precondition(appended <= contentSize, "LZ4FrameCompressor: more bytes than the declared content size")
        emit(bound: LZ4F_compressBound(bytes.count, &prefs)) { dst, cap in
            LZ4F_compressUpdate(self.context, dst, cap, bytes.baseAddress, bytes.count, nil)
        }
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// Flushes the last block, writes the end mark and checksum: `written` is then
    /// the whole frame.
    public func finish() {
        precondition(appended == contentSize, "LZ4FrameCompressor: \(appended) bytes appended, \(contentSize) declared")
        emit(bound: LZ4F_compressBound(0, &prefs)) { dst, cap in LZ4F_compressEnd(self.context, dst, cap, nil) }
    }

    /// Runs one frame-API call that writes at most `bound` bytes after the frame so far.
    private func emit(bound: Int, _ call: (UnsafeMutableRawPointer, Int) -> Int) {
        if count + bound > capacity {
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: count + bound, alignment: 16)
            bigger.copyMemory(from: buffer, byteCount: count)
            buffer.deallocate()
            buffer = bigger
            capacity = count + bound
        }
        let n = call(buffer + count, capacity - count)
        // A destination of the bound's size cannot be too small but for a bug.
        precondition(LZ4F_isError(n) == 0, "LZ4F: \(String(cString: LZ4F_getErrorName(n)))")
        count += n
    }
}
