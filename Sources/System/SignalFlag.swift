import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Records SIGINT and SIGTERM instead of dying on them, so long work (a training
/// run) can stop at a safe point: save, then exit 128 + signal. Handled on a
/// dispatch queue, so a thread blocked in `read` does not delay the record; code
/// that may wait long (for data from a pipe) waits in slices and polls `received`
/// between them (as TrainingRun does with `TrainingSession.dataReady(within:)`).
public final class SignalFlag: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private let value: Box

    private final class Box: Sendable {
        let signal = Mutex<Int32?>(nil)
        func record(_ s: Int32) { signal.withLock { if $0 == nil { $0 = s } } }
    }

    public init(signals: [Int32] = [SIGINT, SIGTERM]) {
        let box = Box()
        value = box
        sources = signals.map { sig in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { box.record(sig) }
            s.resume()
            return s
        }
    }

    /// The first signal received, if any.
    public var received: Int32? { value.signal.withLock { $0 } }
}
