import Foundation
import System
import Testing

@Suite("System: errors")
struct ErrorModelTests {
    @Test func descriptionIsOneEscapedLine() {
        let e = Failure.data("bad\nvalue \u{1}\u{7F} é", at: "f.jsonl:3")
        #expect(e.description == "f.jsonl:3: bad value \\u{1}\\u{7f} é")
        #expect(e.status == .dataError)
        #expect(Failure.usage("x").status.rawValue == 64)
        #expect(Failure.io("x").status.rawValue == 1)
    }

    @Test func locatedKeepsTheFirstLocation() {
        let inner = Failure.data("broken", at: "a.safetensors")
        #expect(inner.located(at: "outer").location == "a.safetensors")
        #expect(Failure.data("broken").located(at: "outer").location == "outer")
        #expect(Failure.io("gone").located(at: "x").status == .failure)
    }
}

@Suite("System: files")
struct FileTests {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "systemtest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func listing() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    @Test func atomicWriterRenamesOnlyOnCommit() throws {
        let path = dir + "/out.bin"
        let w = try AtomicFileWriter(path: path)
        w.append([1, 2, 3])
        #expect(listing() == ["out.bin.tmp-\(getpid())"])
        w.append(Array(repeating: 9, count: 100_000))
        try w.commit()
        #expect(listing() == ["out.bin"])
        let back = try readWholeFile(path)
        #expect(back.count == 100_003 && back.prefix(3) == [1, 2, 3])
        do {
            let d = try AtomicFileWriter(path: dir + "/dropped.bin")
            d.append([1])
        }
        #expect(listing() == ["out.bin"], "a writer dropped without commit leaves nothing")
    }

    @Test func readErrorsAreRuntimeFailuresNamingThePath() {
        #expect(throws: Failure.io("cannot open: no such file or directory", at: dir + "/none")) { try readWholeFile(dir + "/none") }
        #expect(throws: Failure.io("is a directory", at: dir)) { try readWholeFile(dir) }
    }

    @Test func aFullDeviceSaysSo() throws {
        let fd = try FileDescriptor.open("/dev/full", O_WRONLY)
        defer { fd.close() }
        let bytes = [UInt8](repeating: 0, count: 4096)
        let code = bytes.withUnsafeBytes { fd.writeAll($0) }
        #expect(code == ENOSPC)
        #expect(errnoMessage(code) == "no space left on device")
    }

    @Test func readFullyReadsAPipeToItsEnd() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let reader = FileDescriptor(rawValue: ends[0]), writer = FileDescriptor(rawValue: ends[1])
        let payload = (0..<50_000).map { UInt8($0 % 251) }
        let t = Thread {
            for chunk in stride(from: 0, to: payload.count, by: 777) {
                payload[chunk..<min(payload.count, chunk + 777)].withUnsafeBytes { _ = writer.writeAll($0) }
            }
            writer.close()
        }
        t.start()
        var got = [UInt8](repeating: 0, count: 60_000)
        let n = got.withUnsafeMutableBytes { reader.readFully(into: $0) }
        reader.close()
        #expect(n == payload.count)
        #expect(Array(got[0..<n]) == payload)
    }
}

@Suite("System: threads")
struct ThreadTests {
    @Test func coresAreWithinTheMachine() {
        #expect(Cores.available >= 1)
        #expect(Cores.available <= Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    @Test(arguments: [1, 2, 3, 7])
    func poolMapKeepsOrder(workers: Int) {
        let pool = WorkerPool(workers: workers)
        for count in [0, 1, 2, 5, 64] {
            #expect(pool.map(count) { $0 * $0 } == (0..<count).map { $0 * $0 })
        }
    }

    /// Two threads calling one pool at once: the second runs inline; both complete.
    @Test func concurrentCallersBothComplete() {
        let pool = WorkerPool(workers: 2)
        nonisolated(unsafe) var a: [Int] = [], b: [Int] = []
        let done = DispatchSemaphore(value: 0)
        Thread { a = (0..<200).flatMap { r in pool.map(8) { $0 + r } }; done.signal() }.start()
        b = (0..<200).flatMap { r in pool.map(8) { $0 - r } }
        done.wait()
        #expect(a == (0..<200).flatMap { r in (0..<8).map { $0 + r } })
        #expect(b == (0..<200).flatMap { r in (0..<8).map { $0 - r } })
    }

    /// Items and ready answers interleaved come out in submission order, each once.
    @Test(arguments: [1, 3])
    func orderedQueueDeliversInOrder(jobs: Int) {
        nonisolated(unsafe) var delivered: [Int] = []
        let queue = OrderedWorkQueue<Int, Int>(jobs: jobs, work: { x, _ in
            // Uneven work, so later items often finish first.
            var acc = 0
            for i in 0..<((x % 5) * 20_000) { acc &+= i }
            return x * 10 + (acc == -1 ? 1 : 0)
        }, deliver: { seq, out in delivered.append(seq * 1000 + out) })
        for i in 0..<60 {
            if i % 4 == 0 { queue.submit(ready: i * 10) } else { queue.submit(i) }
        }
        queue.finish()
        queue.finish()
        #expect(delivered == (0..<60).map { $0 * 1000 + $0 * 10 })
        #expect(queue.pending == 0)
    }
}
