#if canImport(Glibc)
import Glibc
#endif
import CImageCodecs
import Dispatch
import Foundation
import FileFormats
import System

/// Writes shards to a directory (replaced atomically at the end) or a stream,
/// recording name, size and SHA-256 of each.
final class ShardSink: @unchecked Sendable {
    let destination: ShardDestination
    let split: String
    private(set) var records: [ShardRecord] = []
    /// The directory being filled, `<dir>.tmp-<pid>`; nil for a stream.
    private var tmpDir: String?
    private var finished = false

    init(destination: ShardDestination, split: String) throws(PackError) {
        self.destination = destination
        self.split = split
        if case let .directory(dir) = destination {
            try ShardSink.checkReplaceable(dir)
            let tmp = ShardSink.trimmed(dir) + ".tmp-\(getpid())"
            ShardSink.removeTree(tmp)
            guard mkdir(tmp, 0o755) == 0 else {
                throw PackError(.failure, "cannot create output directory: \(errnoMessage())", location: tmp)
            }
            tmpDir = tmp
        }
    }

    static func trimmed(_ dir: String) -> String {
        var d = dir
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        return d
    }

    /// An existing output must be a directory that is empty or holds an
    /// index.json (a previous run): we never delete anything else.
    static func checkReplaceable(_ dir: String) throws(PackError) {
        var st = stat()
        guard stat(dir, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw PackError(.usage, "output exists and is not a directory", location: dir) }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard entries.isEmpty || entries.contains("index.json") else {
            throw PackError(.usage, "output directory is not empty and holds no index.json: refusing to replace it", location: dir)
        }
    }

    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    func write(_ file: TensorFile, images: Int) throws(PackError) {
        let bytes = file.serialized(compressed: true)
        try write(compressed: bytes, sha256: SHA256.hex(bytes), images: images)
    }

    /// Writes a shard already compressed (and hashed), e.g. by a `ShardStream`.
    func write(compressed bytes: [UInt8], sha256: String, images: Int) throws(PackError) {
        let name = nextShardName()
        switch destination {
        case .directory:
            guard let tmpDir else { return }
            do { try writeFileAtomically(tmpDir + "/" + name, bytes: bytes) } catch { throw PackError(.failure, "\(error)", location: tmpDir + "/" + name) }
        case let .stream(write):
            do { try write(bytes) } catch let e as PackError { throw e } catch { throw PackError(.failure, "cannot write the shard stream: \(error)") }
        }
        records.append(ShardRecord(file: name, images: images, bytes: bytes.count, sha256: sha256))
    }

    /// The next shard's file, to be written as it is produced (`ShardStream`), for a
    /// directory destination; nil for a stream (bytes go out only once complete).
    func openNextShardFile() throws(PackError) -> (name: String, file: AtomicFileWriter)? {
        guard case .directory = destination, let tmpDir else { return nil }
        let name = nextShardName()
        do { return (name, try AtomicFileWriter(path: tmpDir + "/" + name)) } catch { throw PackError(.failure, "\(error)", location: tmpDir + "/" + name) }
    }

    /// Commits a shard file written by a `ShardStream` and records it.
    func commitShardFile(_ name: String, _ file: AtomicFileWriter, images: Int, bytes: Int, sha256: String) throws(PackError) {
        do { try file.commit() } catch { throw PackError(.failure, "\(error)", location: file.path) }
        records.append(ShardRecord(file: name, images: images, bytes: bytes, sha256: sha256))
    }

    private func nextShardName() -> String {
        "\(split)-\(String(repeating: "0", count: max(0, 5 - String(records.count).count)))\(records.count).safetensors.lz4"
    }

    /// Writes index.json and swaps the new directory in.
    func finish(index: JSONValue) throws(PackError) {
        guard case let .directory(rawDir) = destination, let tmpDir else { finished = true; return }
        let dir = ShardSink.trimmed(rawDir)
        do { try writeFileAtomically(tmpDir + "/index.json", bytes: Array((index.prettyText() + "\n").utf8)) } catch {
            throw PackError(.failure, "\(error)", location: tmpDir + "/index.json")
        }
        try ShardSink.checkReplaceable(dir)
        var st = stat()
        if stat(dir, &st) != 0 {
            guard rename(tmpDir, dir) == 0 else { throw PackError(.failure, "cannot rename \(tmpDir) into place: \(errnoMessage())", location: dir) }
        } else if an_rename_exchange(tmpDir, dir) == 0 {
            // tmpDir now holds the previous output.
            ShardSink.removeTree(tmpDir)
        } else {
            // No RENAME_EXCHANGE on this filesystem: two renames, a short window without `dir`.
            let old = dir + ".old-\(getpid())"
            guard rename(dir, old) == 0 else { throw PackError(.failure, "cannot move the previous output aside: \(errnoMessage())", location: dir) }
            guard rename(tmpDir, dir) == 0 else {
                _ = rename(old, dir)
                throw PackError(.failure, "cannot rename \(tmpDir) into place: \(errnoMessage())", location: dir)
            }
            ShardSink.removeTree(old)
        }
        finished = true
    }

    /// Removes the temporary directory of an unfinished run.
    func abandon() {
        guard !finished, let tmpDir else { return }
        ShardSink.removeTree(tmpDir)
    }
}

/// Finishes shards (serialise, LZ4, SHA-256, write) on a background queue,
/// one at a time and in order, so the next shard's images decode meanwhile.
/// At most one shard is in flight; its error surfaces at the next call.
final class AsyncShardWriter: @unchecked Sendable {
    let sink: ShardSink
    private let queue = DispatchQueue(label: "ShardSink.writer")
    private let group = DispatchGroup()
    private var error: PackError?

    init(sink: ShardSink) { self.sink = sink }

    func write(_ file: TensorFile, images: Int) throws(PackError) {
        try wait()
        group.enter()
        queue.async { [self] in
            do throws(PackError) { try sink.write(file, images: images) } catch { self.error = error }
            group.leave()
        }
    }

    /// Waits for the shard in flight; rethrows its error.
    func wait() throws(PackError) {
        group.wait()
        if let error { throw error }
    }

    // A shard compressed while its images decode: `beginStream` when its first image
    // arrives, `streamPixels` as chunks are consumed, then `finishStream` when it holds
    // the images announced, or `abandonStream` (and `write`) when it does not. All run
    // in order on the writer's queue, after the shard before.
    private var stream: ShardStream?

    func beginStream(metadata: [String: String], images: Int, size: Int) {
        enqueue { w in
            do throws(PackError) {
                let file = try w.sink.openNextShardFile()
                w.stream = ShardStream(metadata: metadata, images: images, size: size, file: file)
            } catch { w.error = error }
        }
    }

    func streamPixels(_ pixels: [UInt8]) {
        enqueue { $0.stream?.append(pixels: pixels) }
    }

    func abandonStream() {
        enqueue { $0.stream = nil }
    }

    func finishStream(labels: [Int32]) throws(PackError) {
        try wait()
        group.enter()
        queue.async { [self] in
            if let s = stream {
                stream = nil
                let (bytes, count, digest) = s.finish(labels: labels)
                do throws(PackError) {
                    if let (name, file) = s.file {
                        try sink.commitShardFile(name, file, images: labels.count, bytes: count, sha256: digest)
                    } else if let bytes {
                        try sink.write(compressed: bytes, sha256: digest, images: labels.count)
                    }
                } catch { self.error = error }
            }
            group.leave()
        }
    }

    private func enqueue(_ work: @escaping @Sendable (AsyncShardWriter) -> Void) {
        group.enter()
        queue.async { [self] in
            work(self)
            group.leave()
        }
    }
}

/// One shard compressed and hashed as its images arrive, for a shard whose image
/// count is known when it starts: the safetensors header for `images` images, the
/// pixels as they come, the labels at the end. Its bytes equal
/// `TensorFile.serialized()` of the same shard (one LZ4 frame either way). With a
/// `file`, the compressed bytes are written as they are produced, so little is left
/// to write when the last image arrives; dropping the stream discards the file.
final class ShardStream {
    let file: (name: String, file: AtomicFileWriter)?
    private let compressor: LZ4FrameCompressor
    private var hash = SHA256()
    private var done = 0

    init(metadata: [String: String], images: Int, size: Int, file: (name: String, file: AtomicFileWriter)?) {
        self.file = file
        let header = TensorFile.encodedHeader(metadata: metadata, tensors: [
            ("images", .u8, [images, size, size, 3]), ("labels", .i32, [images]),
        ])
        compressor = LZ4FrameCompressor(contentSize: header.count + images * size * size * 3 + images * 4)
        compressor.append(header)
        consumeOutput()
    }

    func append(pixels: [UInt8]) {
        compressor.append(pixels)
        consumeOutput()
    }

    /// Ends the frame: its bytes (nil when they went to `file`), size and SHA-256 (hex).
    func finish(labels: [Int32]) -> (bytes: [UInt8]?, count: Int, sha256: String) {
        compressor.append(Tensor(labels, shape: [labels.count]).bytes)
        compressor.finish()
        consumeOutput()
        return (file == nil ? Array(compressor.written) : nil, compressor.count, hash.hexDigest())
    }

    /// Hashes (and writes to `file`) the compressed bytes produced since the last call.
    private func consumeOutput() {
        let fresh = UnsafeRawBufferPointer(rebasing: compressor.written[done...])
        hash.update(fresh)
        file?.file.append(fresh)
        done = compressor.written.count
    }
}
