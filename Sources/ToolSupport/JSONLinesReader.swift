#if canImport(Glibc)
import Glibc
#endif
import FileFormats
import System

/// Reads JSON lines from a file or stdin ("-" or nil), one object per line;
/// blank lines are skipped. Errors name the source and the line number.
public struct JSONLinesReader {
    public let sourceName: String
    private let fd: FileDescriptor
    private let ownsFD: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    public private(set) var lineNumber = 0

    public init(path: String?) throws(Failure) {
        if let path, path != "-" {
            fd = try FileDescriptor.open(path, O_RDONLY)
            sourceName = path
            ownsFD = true
        } else {
            fd = .standardInput
            sourceName = "<stdin>"
            ownsFD = false
        }
    }

    public func close() { if ownsFD { fd.close() } }

    /// The next raw line (without the newline), or nil at end of input.
    public mutating func nextLine() throws(Failure) -> [UInt8]? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                lineNumber += 1
                return line
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                lineNumber += 1
                return line
            }
            if start > 0 { buffer.removeFirst(start); start = 0 }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let r = chunk.withUnsafeMutableBytes { fd.read(into: $0) }
            if r < 0 { throw .io("read error: \(errnoMessage())", at: sourceName) }
            if r == 0 { atEnd = true } else { buffer.append(contentsOf: chunk[0..<r]) }
        }
    }

    /// The next non-blank line parsed as a JSON object, or nil at end of input.
    public mutating func next() throws(Failure) -> JSONValue? {
        while let line = try nextLine() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let value: JSONValue
            do {
                value = try line.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
            } catch {
                throw error.located(at: location)
            }
            guard case .object = value else {
                throw .data("expected a JSON object, found \(value.kindName)", at: location)
            }
            return value
        }
        return nil
    }

    /// Whether `nextLine` would return without waiting: a whole line is buffered, the
    /// input has ended, or more bytes can be read at once (a co-process's caller waits
    /// for an answer before it sends the next line).
    public var isReady: Bool {
        if atEnd || buffer[start...].contains(0x0A) { return true }
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    /// "file:line" of the line last returned.
    public var location: String { "\(sourceName):\(lineNumber)" }
}
