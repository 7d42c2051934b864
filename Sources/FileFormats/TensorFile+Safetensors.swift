/// The safetensors layout: an 8-byte little-endian header length n, n bytes of
/// JSON header (`{"name":{"dtype","shape","data_offsets":[begin,end]},
/// "__metadata__":{string:string}}`, space-padded to a multiple of 8), then the
/// data buffer; offsets are relative to the start of the data buffer.
extension TensorFile {
    /// Largest header we accept: far above any real checkpoint (the official
    /// supernet's header is ~60 KB), small enough that a corrupt length cannot
    /// make us allocate gigabytes.
    public static let maxHeaderBytes = 64 << 20

    public func encoded() -> [UInt8] {
        let all = tensors
        var out = TensorFile.encodedHeader(metadata: metadata, tensors: all.map { ($0.name, $0.tensor.dtype, $0.tensor.shape) })
        out.reserveCapacity(out.count + all.reduce(0) { $0 + $1.tensor.bytes.count })
        for (_, t) in all { out.append(contentsOf: t.bytes) }
        return out
    }

    /// The first bytes of `encoded()` for a file with this metadata and these tensors
    /// (in this order): the 8-byte header length and the padded JSON header. The data
    /// follows, tensor after tensor; a writer can stream it without the whole file.
    public static func encodedHeader(metadata: [String: String], tensors: [(name: String, dtype: DType, shape: [Int])]) -> [UInt8] {
        var header: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            header.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for t in tensors {
            let end = offset + t.shape.reduce(1, *) * t.dtype.byteSize
            header.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", JSONValue(t.shape)),
                ("data_offsets", JSONValue([offset, end])),
            ])))
            offset = end
        }
        var headerBytes = Array(JSONValue.object(header).jsonText.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count)
        var n = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        return out
    }

    /// Total size of a safetensors file whose first bytes are `prefix`, when
    /// the header is complete in `prefix`; nil when more bytes are needed.
    static func totalSize(headerPrefix prefix: [UInt8]) throws(TensorFileError) -> Int? {
        guard prefix.count >= 8 else { return nil }
        let n = try headerLength(prefix)
        guard prefix.count >= 8 + n else { return nil }
        let entries = try parseHeader(Array(prefix[8..<(8 + n)]), dataSize: nil).entries
        return 8 + n + (entries.map { $0.end }.max() ?? 0)
    }

    static func headerLength(_ bytes: [UInt8]) throws(TensorFileError) -> Int {
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n >= 2, n <= UInt64(maxHeaderBytes) else {
            throw .badHeader("header length \(n) is out of range")
        }
        return Int(n)
    }

    struct HeaderEntry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    static func parseHeader(_ bytes: [UInt8], dataSize: Int?) throws(TensorFileError) -> (entries: [HeaderEntry], metadata: [String: String]) {
        let json: JSONValue
        do {
            json = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
        } catch {
            throw .badHeader(error.description)
        }
        guard let pairs = json.objectValue else { throw .badHeader("header is \(json.kindName), not an object") }
        var entries: [HeaderEntry] = []
        var metadata: [String: String] = [:]
        for (name, value) in pairs {
            if name == "__metadata__" {
                guard let m = value.objectValue else { throw .badHeader("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v.stringValue else { throw .badHeader("__metadata__ value of '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let dtypeName = value["dtype"]?.stringValue else { throw .badTensor(name: name, "missing dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw .badTensor(name: name, "unsupported dtype \(dtypeName)") }
            guard let shapeValues = value["shape"]?.arrayValue else { throw .badTensor(name: name, "missing shape") }
            var shape: [Int] = []
            var count = 1
            for s in shapeValues {
                guard let d = s.intValue, d >= 0, d < (1 << 40) else { throw .badTensor(name: name, "invalid shape \(JSONValue.array(shapeValues).jsonText)") }
                shape.append(Int(d))
                let (c, overflow) = count.multipliedReportingOverflow(by: Int(d))
                guard !overflow, c < (1 << 40) else { throw .badTensor(name: name, "shape too large") }
                count = c
            }
            guard let offs = value["data_offsets"]?.arrayValue, offs.count == 2,
                  let b = offs[0].intValue, let e = offs[1].intValue, b >= 0, e >= b else {
                throw .badTensor(name: name, "invalid data_offsets")
            }
            if let size = dataSize, e > Int64(size) {
                throw .badTensor(name: name, "data_offsets [\(b), \(e)] beyond the \(size)-byte data buffer")
            }
            guard Int(e - b) == count * dtype.byteSize else {
                throw .badTensor(name: name, "shape \(shape) needs \(count * dtype.byteSize) bytes but data_offsets span \(e - b)")
            }
            entries.append(HeaderEntry(name: name, dtype: dtype, shape: shape, begin: Int(b), end: Int(e)))
        }
        let sorted = entries.sorted { $0.begin < $1.begin }
        for i in sorted.indices.dropFirst() where sorted[i].begin < sorted[i - 1].end && sorted[i].end > sorted[i].begin {
            throw .badTensor(name: sorted[i].name, "data overlaps tensor '\(sorted[i - 1].name)'")
        }
        return (entries, metadata)
    }

    /// Reads a plain (uncompressed) safetensors file.
    public init(safetensors bytes: [UInt8]) throws(TensorFileError) {
        guard bytes.count >= 8 else { throw .truncated("\(bytes.count) bytes, shorter than the 8-byte header length") }
        let n = try TensorFile.headerLength(bytes)
        guard 8 + n <= bytes.count else { throw .truncated("header length \(n) is beyond the end of the \(bytes.count)-byte file") }
        let dataSize = bytes.count - 8 - n
        let (entries, metadata) = try TensorFile.parseHeader(Array(bytes[8..<(8 + n)]), dataSize: dataSize)
        self.init(metadata: metadata)
        // Keep the file's order of tensors: by position in the data buffer.
        for e in entries.sorted(by: { $0.begin < $1.begin }) {
            let base = 8 + n
            self[e.name] = Tensor(dtype: e.dtype, shape: e.shape, bytes: Array(bytes[(base + e.begin)..<(base + e.end)]))
        }
    }

    /// Reads a tensor file, compressed as LZ4 frames or plain, by sniffing the magic.
    public init(bytes: [UInt8]) throws(TensorFileError) {
        if LZ4Frame.hasMagic(bytes) {
            try self.init(safetensors: LZ4Frame.decompress(bytes, safetensors: true))
        } else {
            try self.init(safetensors: bytes)
        }
    }

    /// The file's bytes, LZ4-frame-compressed when `compressed` (the default).
    public func serialized(compressed: Bool = true) -> [UInt8] {
        compressed ? LZ4Frame.compress(encoded()) : encoded()
    }
}
