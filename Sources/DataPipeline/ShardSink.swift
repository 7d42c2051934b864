#if canImport(Glibc)
import Glibc
#endif
import CImageCodecs
import Dispatch
import Foundation
import FileFormats

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
                throw PackError(.io, "cannot create output directory: \(String(cString: strerror(errno)).lowercased())", location: tmp)
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
        let name = "\(split)-\(String(repeating: "0", count: max(0, 5 - String(records.count).count)))\(records.count).safetensors.lz4"
        let bytes = file.serialized(compressed: true)
        switch destination {
        case .directory:
            guard let tmpDir else { return }
            do { try writeFileAtomically(tmpDir + "/" + name, bytes: bytes) } catch { throw PackError(.io, "\(error)", location: tmpDir + "/" + name) }
        case let .stream(write):
            do { try write(bytes) } catch let e as PackError { throw e } catch { throw PackError(.io, "cannot write the shard stream: \(error)") }
        }
        records.append(ShardRecord(file: name, images: images, bytes: bytes.count, sha256: SHA256.hex(bytes)))
    }

    /// Writes index.json and swaps the new directory in.
    func finish(index: JSONValue) throws(PackError) {
        guard case let .directory(rawDir) = destination, let tmpDir else { finished = true; return }
        let dir = ShardSink.trimmed(rawDir)
        do { try writeFileAtomically(tmpDir + "/index.json", bytes: Array((index.prettyText() + "\n").utf8)) } catch {
            throw PackError(.io, "\(error)", location: tmpDir + "/index.json")
        }
        try ShardSink.checkReplaceable(dir)
        var st = stat()
        if stat(dir, &st) != 0 {
            guard rename(tmpDir, dir) == 0 else { throw PackError(.io, "cannot rename \(tmpDir) into place: \(String(cString: strerror(errno)).lowercased())", location: dir) }
        } else if an_rename_exchange(tmpDir, dir) == 0 {
            // tmpDir now holds the previous output.
            ShardSink.removeTree(tmpDir)
        } else {
            // No RENAME_EXCHANGE on this filesystem: two renames, a short window without `dir`.
            let old = dir + ".old-\(getpid())"
            guard rename(dir, old) == 0 else { throw PackError(.io, "cannot move the previous output aside: \(String(cString: strerror(errno)).lowercased())", location: dir) }
            guard rename(tmpDir, dir) == 0 else {
                _ = rename(old, dir)
                throw PackError(.io, "cannot rename \(tmpDir) into place: \(String(cString: strerror(errno)).lowercased())", location: dir)
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
}
