#if canImport(Glibc)
import Glibc
#endif
import FileFormats
import System

/// A shell command started once, as a co-process, that reads arch JSON lines
/// on its stdin and writes one JSON line per arch on its stdout, in order
/// (`estimate-acc`, `predict-acc` and the test oracle all fit). Its stderr is
/// the search's stderr.
///
/// A batch is written while answers are read, in one thread with poll(2) on
/// non-blocking pipes, so neither side can block the other however large the
/// batch; the command must answer each line once it has read it, without
/// waiting for the end of its input (stdin stays open between batches).
/// Each answer must come within `timeout` seconds of the batch start or of the
/// previous answer. Any failure (the command exits, answers a line that is no
/// JSON object, answers too few lines, or times out) kills the command and
/// throws, naming the arch in flight.
///
/// SIGPIPE is ignored in this process once a command is started (a command
/// that dies must not take the search with it); the command gets the default.
public final class CommandEvaluator: ArchEvaluator {
    public let command: String
    public let timeout: Double
    public var name: String { "evaluator '\(command)'" }

    private var pid: pid_t = 0
    private var toChild: Int32 = -1
    private var fromChild: Int32 = -1
    private var buffer: [UInt8] = []
    private var running = false

    public init(command: String, timeout: Double) throws(EvaluatorFailure) {
        self.command = command
        self.timeout = timeout
        signal(SIGPIPE, SIG_IGN)
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1]
        guard pipe(&inPipe) == 0 else { throw EvaluatorFailure(message: "cannot create a pipe: \(Self.errnoText())") }
        guard pipe(&outPipe) == 0 else {
            close(inPipe[0]); close(inPipe[1])
            throw EvaluatorFailure(message: "cannot create a pipe: \(Self.errnoText())")
        }
        // Close-on-exec everywhere: the child's 0 and 1 are dup2 copies.
        for fd in inPipe + outPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group, so a timeout kills the whole pipeline the
        // shell started; SIGPIPE back to its default.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        let args = ["/bin/sh", "-c", command]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, &argv, environ)
        close(inPipe[0])
        close(outPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0])
            throw EvaluatorFailure(message: "cannot start evaluator '\(command)': \(errnoMessage(rc))")
        }
        toChild = inPipe[1]
        fromChild = outPipe[0]
        running = true
        _ = fcntl(toChild, F_SETFL, fcntl(toChild, F_GETFL) | O_NONBLOCK)
    }

    deinit { kill() }

    public func evaluate(_ requests: [JSONValue]) throws(EvaluatorFailure) -> [JSONValue] {
        guard !requests.isEmpty else { return [] }
        var answers: [JSONValue] = []
        answers.reserveCapacity(requests.count)
        func fail(_ what: String) -> EvaluatorFailure {
            let inFlight = answers.count < requests.count
                ? "arch \(answers.count + 1) of \(requests.count) in this batch: \(requests[answers.count].jsonText)"
                : "the end of a batch of \(requests.count)"
            return EvaluatorFailure(answers: answers, message: "\(name) \(what) before answering \(inFlight)")
        }
        guard running else { throw fail("is not running") }
        var payload: [UInt8] = []
        for r in requests {
            payload.append(contentsOf: r.jsonText.utf8)
            payload.append(0x0A)
        }
        var written = 0
        var deadline = Self.now() + timeout
        while true {
            // Take every complete line already read.
            while answers.count < requests.count, let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeFirst(nl + 1)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let value: JSONValue
                do {
                    value = try line.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
                } catch {
                    kill()
                    throw fail("wrote a line that is not JSON (\(error); line: \(Self.excerpt(line)))")
                }
                guard case .object = value else {
                    kill()
                    throw fail("wrote a line that is not a JSON object (\(Self.excerpt(line)))")
                }
                answers.append(value)
                deadline = Self.now() + timeout
            }
            if answers.count == requests.count {
                if buffer.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }) {
                    kill()
                    throw EvaluatorFailure(answers: answers, message: "\(name) wrote more lines than the \(requests.count) archs it was sent (extra: \(Self.excerpt(buffer)))")
                }
                return answers
            }
            let wait = deadline - Self.now()
            if wait <= 0 {
                kill()
                throw fail("gave no answer within --evaluator-timeout \(timeout) s")
            }
            var fds = [pollfd(fd: fromChild, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: written < payload.count ? toChild : -1, events: Int16(POLLOUT), revents: 0)]
            let n = poll(&fds, 2, Int32(min(wait * 1000, 3_600_000).rounded(.up)))
            if n < 0 {
                if errno == EINTR { continue }
                kill()
                throw fail("could not be polled (\(Self.errnoText()))")
            }
            if fds[1].revents != 0 {
                let w = payload.withUnsafeBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return write(toChild, base + written, raw.count - written)
                }
                if w > 0 {
                    written += w
                } else if w < 0 && errno != EAGAIN && errno != EINTR {
                    // The command closed its input (or died): stop writing,
                    // keep reading what it still says, then report its end.
                    written = payload.count
                }
            }
            if fds[0].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let r = chunk.withUnsafeMutableBytes { read(fromChild, $0.baseAddress, $0.count) }
                if r > 0 {
                    buffer.append(contentsOf: chunk[0..<r])
                } else if r == 0 || (errno != EAGAIN && errno != EINTR) {
                    let status = reap()
                    let partial = buffer.isEmpty ? "" : " (its last, unfinished line: \(Self.excerpt(buffer)))"
                    throw fail("\(status)\(partial), after \(answers.count) answers,")
                }
            }
        }
    }

    public func finish() -> String? {
        guard running else { return nil }
        close(toChild)
        toChild = -1
        // Give it a moment to exit by itself after its input ends.
        let deadline = Self.now() + min(timeout, 10)
        while Self.now() < deadline {
            var fds = [pollfd(fd: fromChild, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 1, 100)
            if n > 0 {
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let r = chunk.withUnsafeMutableBytes { read(fromChild, $0.baseAddress, $0.count) }
                if r > 0 { continue }
                let status = reap()
                return status == "exited with status 0" ? nil : "\(name) \(status) after answering every arch"
            }
        }
        kill()
        return nil
    }

    /// Closes the pipes, kills the command's process group and reaps it.
    private func kill() {
        guard running else { return }
        Glibc.kill(-pid, SIGKILL)
        _ = reap()
    }

    /// Waits for the command to end; a description of how it ended.
    private func reap() -> String {
        if toChild >= 0 { close(toChild); toChild = -1 }
        if fromChild >= 0 { close(fromChild); fromChild = -1 }
        guard running else { return "is not running" }
        running = false
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Also end anything it left running in its group.
        Glibc.kill(-pid, SIGKILL)
        let signal = status & 0x7f
        return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func errnoText() -> String { errnoMessage() }

    private static func excerpt(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(120), as: UTF8.self)
        return "'" + text.replacingNewlines() + (bytes.count > 120 ? "...'" : "'")
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
