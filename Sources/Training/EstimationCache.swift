#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import FileFormats
import Supernet
import Synchronization
import System

/// Accuracy results already computed, in a JSON-lines file that several
/// processes may share.
///
/// One record per line: `{"checkpoint_sha256", "settings", "arch", "acc1",
/// "acc5", "loss", "images"}`; the key is (checkpoint digest, settings text,
/// arch key). Appending is safe between processes: each record is one
/// `write(2)` of a whole line on an `O_APPEND` descriptor, which the kernel
/// applies atomically at the end of a regular file. A reader ignores a line
/// it cannot parse (a torn last line from a killed writer) and records of
/// other checkpoints or settings. When a key occurs twice the later record wins
/// (both computed the same thing).
public final class EstimationCache: Sendable {
    public let path: String
    private let fd: FileDescriptor
    private struct State {
        var results: [String: SubnetAccuracy] = [:]
        /// The file does not end with a newline (a torn last record): the next
        /// record starts with one, so it is not glued onto the torn line.
        var tornTail = false
    }
    private let state: Mutex<State>
    /// Lines that could not be read (a torn write, a foreign line).
    public let skippedLines: Int

    /// Opens (creating if needed) the cache file and reads its records.
    public init(path: String) throws(Failure) {
        self.path = path
        do { fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC) } catch {
            throw .io("cannot open the cache: \(errnoMessage())", at: path)
        }
        // A device or a FIFO (say /dev/full) never ends when read: only regular files.
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            fd.close()
            throw .usage("the cache must be a regular file", at: path)
        }
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch {
            fd.close()
            throw error
        }
        var loaded = State()
        loaded.tornTail = !bytes.isEmpty && bytes.last != 0x0A
        let (records, skipped) = EstimationCache.records(in: bytes)
        for r in records { loaded.results[r.key] = r.accuracy }
        skippedLines = skipped
        state = Mutex(loaded)
    }

    /// The readable records of cache bytes, and how many lines were not.
    static func records(in bytes: [UInt8]) -> (records: [(key: String, accuracy: SubnetAccuracy, line: JSONValue)], skipped: Int) {
        var out: [(key: String, accuracy: SubnetAccuracy, line: JSONValue)] = []
        var skipped = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: true) {
            guard let value = try? Array(line).withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }),
                  let key = EstimationCache.key(of: value),
                  let acc1 = value["acc1"]?.doubleValue, let acc5 = value["acc5"]?.doubleValue,
                  let loss = value["loss"]?.doubleValue, let images = value["images"]?.intValue
            else { skipped += 1; continue }
            out.append((key, SubnetAccuracy(acc1: acc1, acc5: acc5, loss: loss, images: Int(images)), value))
        }
        return (out, skipped)
    }

    /// Appends the records of another cache file (say, one per task of a job array)
    /// that this one lacks; returns how many. Lines it cannot read are skipped, as
    /// when opening a cache.
    public func merge(from other: String) throws(Failure) -> Int {
        let (records, _) = EstimationCache.records(in: try readWholeFile(other))
        var added = 0
        for r in records where state.withLock({ $0.results[r.key] == nil }) {
            try append(r.line, key: r.key, result: r.accuracy)
            added += 1
        }
        return added
    }

    deinit { fd.close() }

    public static func key(checkpoint: String, settings: JSONValue, arch: Arch) -> String {
        "\(checkpoint)\n\(settings.jsonText)\n\(arch.key)"
    }

    static func key(of record: JSONValue) -> String? {
        guard let c = record["checkpoint_sha256"]?.stringValue, let s = record["settings"], let a = record["arch"],
              let arch = try? Arch(json: a) else { return nil }
        return key(checkpoint: c, settings: s, arch: arch)
    }

    public var count: Int { state.withLock { $0.results.count } }

    public func lookup(checkpoint: String, settings: JSONValue, arch: Arch) -> SubnetAccuracy? {
        let k = EstimationCache.key(checkpoint: checkpoint, settings: settings, arch: arch)
        return state.withLock { $0.results[k] }
    }

    /// Appends a record with one write(2) of the whole line.
    public func store(_ result: SubnetAccuracy, checkpoint: String, settings: JSONValue, arch: Arch) throws(Failure) {
        let record: JSONValue = .object([
            ("checkpoint_sha256", .string(checkpoint)),
            ("settings", settings),
            ("arch", arch.merged()),
            ("acc1", .double(result.acc1)),
            ("acc5", .double(result.acc5)),
            ("loss", .double(result.loss)),
            ("images", JSONValue(result.images)),
        ])
        try append(record, key: EstimationCache.key(checkpoint: checkpoint, settings: settings, arch: arch), result: result)
    }

    private func append(_ record: JSONValue, key k: String, result: SubnetAccuracy) throws(Failure) {
        let failure: Int32 = state.withLock { s in
            let line = Array(((s.tornTail ? "\n" : "") + record.jsonText + "\n").utf8)
            // One write(2) of the whole line (O_APPEND); a full disk may leave a
            // torn tail, which the next opening repairs as above.
            var w = -1
            repeat { w = line.withUnsafeBytes { raw in Glibc.write(fd.rawValue, raw.baseAddress, raw.count) } } while w < 0 && errno == EINTR
            if w == line.count {
                s.tornTail = false
                s.results[k] = result
                return 0
            }
            s.tornTail = true
            return w < 0 ? errno : ENOSPC
        }
        if failure != 0 { throw .io("cannot append to the cache: \(errnoMessage(failure))", at: path) }
    }
}
