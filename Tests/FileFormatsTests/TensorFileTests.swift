import System
import FileFormats
import Foundation
import Testing

/// A fresh temporary directory per test.
func makeTempDir() throws -> String {
    let path = NSTemporaryDirectory() + "fileformats-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func sampleFile() -> TensorFile {
    var f = TensorFile(metadata: ["split": "train", "classes": "a,b,c"])
    f["weights"] = Tensor((0..<24).map { Float($0) * 0.5 - 3 }, shape: [2, 3, 4])
    f["f64"] = Tensor([1.0, -2.5, 1e300], shape: [3])
    f["labels"] = Tensor([Int32(7), -1, 2], shape: [3])
    f["step"] = Tensor([Int64(1) << 40], shape: [])
    f["images"] = Tensor((0..<12).map { UInt8($0 * 20) }, shape: [1, 2, 2, 3])
    f["mask"] = Tensor([1, 0, 1], shape: [3], dtype: .bool)
    f["empty"] = Tensor([Float](), shape: [0, 5])
    return f
}

@Suite struct TensorFileTests {
    @Test(arguments: [true, false])
    func roundTripEveryDtype(compressed: Bool) throws {
        let f = sampleFile()
        let bytes = f.serialized(compressed: compressed)
        #expect(LZ4Frame.hasMagic(bytes) == compressed)
        let g = try TensorFile(bytes: bytes)
        #expect(g == f)
        #expect(g.names == f.names)
        #expect(g["weights"]?.floats()[5] == -0.5)
        #expect(g["step"]?.ints() == [1 << 40])
        #expect(g["labels"]?.ints() == [7, -1, 2])
        #expect(g.metadata["classes"] == "a,b,c")
    }

    @Test func halfAndBFloat16AreRead() throws {
        // 1.0, -2.0, 65504 in IEEE half; 1.0, -2.0 in bfloat16.
        var f = TensorFile()
        f["h"] = Tensor(dtype: .f16, shape: [3], bytes: [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B])
        f["b"] = Tensor(dtype: .bf16, shape: [2], bytes: [0x80, 0x3F, 0x00, 0xC0])
        let g = try TensorFile(bytes: f.serialized())
        #expect(g["h"]?.floats() == [1, -2, 65504])
        #expect(g["b"]?.floats() == [1, -2])
    }

    @Test func atomicWriteAndRead() throws {
        let dir = try makeTempDir()
        let path = dir + "/x.safetensors.lz4"
        try sampleFile().write(to: path)
        #expect(try TensorFile(contentsOf: path) == sampleFile())
        // Only the final file is left: no temporary names.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["x.safetensors.lz4"])
        let raw = try readWholeFile(path)
        #expect(LZ4Frame.hasMagic(raw))
        let plain = dir + "/y.safetensors"
        try sampleFile().write(to: plain)
        #expect(!LZ4Frame.hasMagic(try readWholeFile(plain)))
    }

    /// A stream of files through a real pipe, read one at a time.
    @Test(arguments: [true, false])
    func streamThroughPipe(compressed: Bool) throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let files = (0..<5).map { i -> TensorFile in
            var f = TensorFile(metadata: ["index": "\(i)"])
            f["x"] = Tensor((0..<(1000 * (i + 1))).map { Float($0 % 97) }, shape: [1000 * (i + 1)])
            return f
        }
        let writeEnd = fds[1]
        let writer = Thread {
            for f in files {
                let bytes = f.serialized(compressed: compressed)
                bytes.withUnsafeBytes { raw in
                    var off = 0
                    while off < raw.count, let base = raw.baseAddress {
                        let w = write(writeEnd, base + off, raw.count - off)
                        if w <= 0 { return }
                        off += w
                    }
                }
            }
            close(writeEnd)
        }
        writer.start()
        var reader = TensorStreamReader(fileDescriptor: fds[0], sourceName: "pipe")
        var got: [TensorFile] = []
        while let f = try reader.next() { got.append(f) }
        close(fds[0])
        #expect(got == files)
    }
}

/// Every kind of broken file gives a clear error, never a crash or a huge allocation.
@Suite struct TensorFileBadInputTests {
    func header(_ json: String, data: [UInt8]) -> [UInt8] {
        let h = Array(json.utf8)
        var n = UInt64(h.count).littleEndian
        return withUnsafeBytes(of: &n) { Array($0) } + h + data
    }

    func expectError(_ bytes: [UInt8], contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try TensorFile(bytes: bytes)
            Issue.record("no error for a file that should contain '\(text)'", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(text), "\(error.description)", sourceLocation: sourceLocation)
            #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
        }
    }

    @Test func truncatedFile() {
        let bytes = sampleFile().encoded()
        expectError(Array(bytes.prefix(5)), contains: "truncated")
        expectError(Array(bytes.prefix(40)), contains: "beyond the end")
        expectError(Array(bytes.dropLast(3)), contains: "beyond")
    }

    @Test func wrongMagicOrGarbage() {
        expectError(Array("PK\u{03}\u{04}this is a zip file, not a tensor file".utf8), contains: "header length")
    }

    @Test func headerLengthBeyondFile() {
        var bytes = sampleFile().encoded()
        bytes[0] = 0xFF; bytes[1] = 0xFF; bytes[2] = 0x0F
        expectError(bytes, contains: "beyond the end")
        bytes[7] = 0x10 // 2^60: refused before any allocation
        expectError(bytes, contains: "out of range")
    }

    @Test func overlappingOffsets() {
        let b = header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: [UInt8](repeating: 0, count: 12))
        expectError(b, contains: "overlaps")
    }

    @Test func offsetsOutOfRange() {
        let b = header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8))
        expectError(b, contains: "beyond the 8-byte data buffer")
        let c = header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: [UInt8](repeating: 0, count: 8))
        expectError(c, contains: "invalid data_offsets")
    }

    @Test func shapeDoesNotMatchByteCount() {
        let b = header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        expectError(b, contains: "needs 12 bytes")
        let huge = header(#"{"a":{"dtype":"F32","shape":[1000000,1000000,1000000],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        expectError(huge, contains: "shape")
    }

    @Test func invalidHeaderJSON() {
        expectError(header(#"{"a":{"dtype":"F32","#, data: []), contains: "invalid safetensors header")
        expectError(header(#"[1,2,3]"#, data: []), contains: "not an object")
        expectError(header(#"{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), contains: "unsupported dtype")
        expectError(header(#"{"__metadata__":{"k":1}}"#, data: []), contains: "__metadata__")
    }

    /// A frame compressed piece by piece is byte for byte the one-call frame, for
    /// pieces of every size around the 4 MiB block and contents that get smaller
    /// blocks, and the encoded header plus the
    /// tensors' bytes is `encoded()`.
    @Test func streamedFrameEqualsOneCallFrame() throws {
        var state: UInt64 = 9
        // 9.5 MiB: runs of repeated bytes (compressible) between noise.
        let data = (0..<(9 << 20 + 1 << 19)).map { i -> UInt8 in
            if (i >> 12) % 3 == 0 { return UInt8(truncatingIfNeeded: i >> 12) }
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 40)
        }
        // A flat region across the first 4 MiB block boundary: matches there reach back
        // into the previous block (liblz4 then compresses from its own buffer or straight
        // from the appended piece, with the previous block as dictionary either way).
        var flat = data
        for i in ((4 << 20) - 300_000)..<((4 << 20) + 300_000) { flat[i] = 0x55 }
        // Whole, and prefixes whose frames use each smaller block size (one block each).
        for (size, source) in [(data.count, data), (flat.count, flat), (100, data), (65_536, data), (70_000, data), (300_000, data), (2 << 20, data)] {
            let input = Array(source.prefix(size))
            let whole = LZ4Frame.compress(input)
            for pieces in [[size], [1, 4 << 20, 17], [393_216], [5 << 20, 1 << 20, 7], [6_144]] {
                let c = LZ4FrameCompressor(contentSize: size)
                var at = 0, k = 0
                while at < size {
                    let n = min(pieces[k % pieces.count], size - at)
                    input.withUnsafeBytes { c.append(UnsafeRawBufferPointer(rebasing: $0[at..<(at + n)])) }
                    at += n
                    k += 1
                }
                c.finish()
                #expect(Array(c.written) == whole, "\(size) bytes in pieces \(pieces)")
            }
        }
        let f = sampleFile()
        var streamed = TensorFile.encodedHeader(metadata: f.metadata, tensors: f.tensors.map { ($0.name, $0.tensor.dtype, $0.tensor.shape) })
        for (_, t) in f.tensors { streamed += t.bytes }
        #expect(streamed == f.encoded())
        #expect(try TensorFile(bytes: LZ4Frame.compress(streamed)) == f)
    }

    @Test func corruptLZ4Block() {
        var bytes = sampleFile().serialized(compressed: true)
        bytes[bytes.count / 2] ^= 0xFF
        bytes[bytes.count / 2 + 1] ^= 0x5A
        expectError(bytes, contains: "LZ4")
        expectError(Array(sampleFile().serialized(compressed: true).dropLast(10)), contains: "ends early")
    }
}

@Suite struct JSONValueTests {
    @Test func roundTripKeepsOrderAndKinds() throws {
        let text = #"{"z":1,"a":[1.5,-2,true,null,"x\"\n\u00e9"],"m":{"k":3.0,"e":1e-05}}"#
        let v = try JSONValue.parse(text)
        #expect(v.objectValue?.map(\.0) == ["z", "a", "m"])
        #expect(v["z"] == .int(1))
        #expect(v["m"]?["k"] == .double(3))
        let again = try JSONValue.parse(v.jsonText)
        #expect(again == v)
        #expect(v.jsonText.hasPrefix(#"{"z":1,"a":[1.5,-2,true,null,"x\"\n"#))
    }

    @Test func errorsGiveAPosition() {
        for bad in ["{", "[1,]", "{\"a\" 1}", "01", "\"abc", "{\"a\":1} x", "nul", "1e999"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
        let deep = String(repeating: "[", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }
}

@Suite("Hostile tensor files and JSON")
struct HostileInputTests {
    /// An LZ4 frame that decompresses far beyond what its safetensors header describes
    /// stops at the header's size: 64 MiB of zeros after a 16-byte tensor.
    @Test func decompressionBeyondTheHeaderIsRefused() throws {
        var f = TensorFile()
        f["x"] = Tensor([Float](repeating: 1, count: 4), shape: [4])
        let plain = f.serialized(compressed: false)
        let bomb = LZ4Frame.compress(plain + [UInt8](repeating: 0, count: 64 << 20))
        #expect(bomb.count < 1 << 20)
        #expect(throws: TensorFileError.self) { try TensorFile(bytes: bomb) }
        do { _ = try TensorFile(bytes: bomb) } catch {
            guard case .badCompression(let why) = error else { Issue.record("wrong error \(error)"); return }
            #expect(why.contains("beyond the \(plain.count) bytes"), "\(why)")
        }
        #expect(try TensorFile(bytes: LZ4Frame.compress(plain)) == f)
    }

    /// A zero header length is refused after the first decompressed chunk, not after
    /// decompressing everything.
    @Test func zeroHeaderLengthIsRefusedEarly() {
        let bomb = LZ4Frame.compress([UInt8](repeating: 0, count: 32 << 20))
        #expect(throws: TensorFileError.badHeader("header length 0 is out of range")) { try TensorFile(bytes: bomb) }
    }

    /// Objects parse in time linear in their keys (a key scan per key made 80k keys
    /// take 14 s); a repeated key keeps its first place and takes the last value.
    @Test func bigObjectsAndRepeatedKeys() throws {
        let n = 100_000
        let text = "{" + (0..<n).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k5\":-1}"
        let v = try JSONValue.parse(text)
        let pairs = try #require(v.objectValue)
        #expect(pairs.count == n)
        #expect(pairs[5].0 == "k5" && pairs[5].1 == .int(-1))
        #expect(pairs[n - 1].0 == "k\(n - 1)")
    }
}
