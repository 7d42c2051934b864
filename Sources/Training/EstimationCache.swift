#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import FileFormats
import Supernet

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
public final class EstimationCache: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private var results: [String: SubnetAccuracy] = [:]
    private var mutex = pthread_mutex_t()
    /// Lines that could not be read (a torn write, a foreign line).
    public private(set) var skippedLines = 0

    /// Opens (creating if needed) the cache file and reads its records.
    public init(path: String) throws(EstimationError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EstimationError("cannot open the cache: \(String(cString: strerror(errno)).lowercased())", location: path, isData: false)
        }
        self.fd = fd
        pthread_mutex_init(&mutex, nil)
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch {
            close(fd)
            throw EstimationError(error.description, location: path, isData: false)
        }
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: true) {
            guard let value = try? Array(line).withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }),
                  let key = EstimationCache.key(of: value),
                  let acc1 = value["acc1"]?.doubleValue, let acc5 = value["acc5"]?.doubleValue,
                  let loss = value["loss"]?.doubleValue, let images = value["images"]?.intValue
            else { skippedLines += 1; continue }
            results[key] = SubnetAccuracy(acc1: acc1, acc5: acc5, loss: loss, images: Int(images))
        }
    }

    deinit {
        close(fd)
        pthread_mutex_destroy(&mutex)
    }

    public static func key(checkpoint: String, settings: JSONValue, arch: Arch) -> String {
        "\(checkpoint)\n\(settings.jsonText)\n\(arch.key)"
    }

    static func key(of record: JSONValue) -> String? {
        guard let c = record["checkpoint_sha256"]?.stringValue, let s = record["settings"], let a = record["arch"],
              let arch = try? Arch(json: a) else { return nil }
        return key(checkpoint: c, settings: s, arch: arch)
    }

    public var count: Int { locked { results.count } }

    public func lookup(checkpoint: String, settings: JSONValue, arch: Arch) -> SubnetAccuracy? {
        let k = EstimationCache.key(checkpoint: checkpoint, settings: settings, arch: arch)
        return locked { results[k] }
    }

    /// Appends a record with one write(2) of the whole line.
    public func store(_ result: SubnetAccuracy, checkpoint: String, settings: JSONValue, arch: Arch) throws(EstimationError) {
        let record: JSONValue = .object([
            ("checkpoint_sha256", .string(checkpoint)),
            ("settings", settings),
            ("arch", arch.merged()),
            ("acc1", .double(result.acc1)),
            ("acc5", .double(result.acc5)),
            ("loss", .double(result.loss)),
            ("images", JSONValue(result.images)),
        ])
        let line = Array((record.jsonText + "\n").utf8)
        let written = line.withUnsafeBytes { raw -> Int in
            while true {
                let w = write(fd, raw.baseAddress, raw.count)
                if w < 0 && errno == EINTR { continue }
                return w
            }
        }
        guard written == line.count else {
            let reason = written < 0 ? String(cString: strerror(errno)).lowercased() : "short write"
            throw EstimationError("cannot append to the cache: \(reason)", location: path, isData: false)
        }
        let k = EstimationCache.key(checkpoint: checkpoint, settings: settings, arch: arch)
        locked { results[k] = result }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// Runs work items on `jobs` threads and hands the results to `deliver` in
/// submission order, each as soon as it and all before it are done.
///
/// `deliver` runs under the pool's lock, on whichever thread completed the
/// item that made the prefix complete; it is never called concurrently.
/// Items given with a ready result (a cache hit) go through the same order.
/// Call `finish()` before dropping the pool: its threads hold it until then.
public final class OrderedWorkPool<Input: Sendable, Output: Sendable>: @unchecked Sendable {
    private let work: @Sendable (Input, Int) -> Output
    private let deliver: (Int, Output) -> Void
    private var queue: [(Int, Input)] = []
    private var done: [Int: Output] = [:]
    private var nextToDeliver = 0
    private var submitted = 0
    private var closed = false
    private var running = 0
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private let group = DispatchGroup()

    /// - Parameters:
    ///   - work: computes an item on job index 0..<jobs (one thread per job).
    ///   - deliver: receives (sequence number, output) in order.
    public init(jobs: Int, work: @escaping @Sendable (Input, Int) -> Output, deliver: @escaping (Int, Output) -> Void) {
        precondition(jobs >= 1)
        self.work = work
        self.deliver = deliver
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for j in 0..<jobs {
            group.enter()
            DispatchQueue.global().async { [self] in
                loop(job: j)
                group.leave()
            }
        }
    }

    /// Queues an item; returns its sequence number.
    @discardableResult
    public func submit(_ input: Input) -> Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let seq = submitted
        submitted += 1
        queue.append((seq, input))
        pthread_cond_broadcast(&wake)
        return seq
    }

    /// Adds an item whose output is already known.
    @discardableResult
    public func submit(ready output: Output) -> Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let seq = submitted
        submitted += 1
        done[seq] = output
        flushLocked()
        return seq
    }

    /// Items submitted and not yet delivered.
    public var pending: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return submitted - nextToDeliver
    }

    /// Waits until every submitted item is delivered, then stops the threads.
    public func finish() {
        pthread_mutex_lock(&mutex)
        closed = true
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&mutex)
        group.wait()
    }

    deinit {
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&mutex)
    }

    private func loop(job: Int) {
        pthread_mutex_lock(&mutex)
        while true {
            if !queue.isEmpty {
                let (seq, input) = queue.removeFirst()
                running += 1
                pthread_mutex_unlock(&mutex)
                let output = work(input, job)
                pthread_mutex_lock(&mutex)
                running -= 1
                done[seq] = output
                flushLocked()
                continue
            }
            if closed { break }
            pthread_cond_wait(&wake, &mutex)
        }
        pthread_mutex_unlock(&mutex)
    }

    private func flushLocked() {
        while let out = done.removeValue(forKey: nextToDeliver) {
            deliver(nextToDeliver, out)
            nextToDeliver += 1
        }
    }
}
