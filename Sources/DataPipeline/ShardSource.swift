#if canImport(Glibc)
import Glibc
#endif
import Foundation
import FileFormats

/// One shard read back: N images of H x W x 3 (NHWC), uint8 as packed or
/// float32 (then used as given: no /255, no mean/std), with int32 labels.
public struct Shard: Sendable {
    public enum Pixels: Sendable {
        case uint8([UInt8])
        case float32([Float])
    }
    public var count: Int
    public var height: Int
    public var width: Int
    public var pixels: Pixels
    public var labels: [Int32]
    /// From the metadata: the class list in label order (empty if absent).
    public var classes: [String]
    public var split: String?

    /// The largest image side a shard may hold (pack-imagenet's --size limit).
    public static let maximumSide = 4096

    /// Checks the `images` and `labels` tensors of a shard file; `name` goes into errors.
    public init(_ file: TensorFile, name: String) throws(PackError) {
        guard let images = file["images"], let labels = file["labels"] else {
            throw PackError(.dataError, "not a shard: needs tensors 'images' and 'labels'", location: name)
        }
        guard images.shape.count == 4, images.shape[3] == 3, labels.shape == [images.shape[0]] else {
            throw PackError(.dataError, "not a shard: images \(images.shape) must be [N,H,W,3] and labels \(labels.shape) [N]", location: name)
        }
        guard labels.dtype == .i32 || labels.dtype == .i64 else { throw PackError(.dataError, "labels must be int32 or int64, not \(labels.dtype.rawValue)", location: name) }
        count = images.shape[0]
        height = images.shape[1]
        width = images.shape[2]
        guard (1...Shard.maximumSide).contains(height), (1...Shard.maximumSide).contains(width) else {
            throw PackError(.dataError, "images are \(height)x\(width); each side must be within 1...\(Shard.maximumSide)", location: name)
        }
        switch images.dtype {
        case .u8: pixels = .uint8(images.bytes)
        case .f32: pixels = .float32(images.floats())
        default: throw PackError(.dataError, "images must be uint8 or float32, not \(images.dtype.rawValue)", location: name)
        }
        if let text = file.metadata["classes"], case let .array(items)? = try? JSONValue.parse(text) {
            classes = items.compactMap(\.stringValue)
        } else {
            classes = []
        }
        let raw = labels.ints()
        let limit = classes.isEmpty ? Int(Int32.max) + 1 : classes.count
        if let bad = raw.firstIndex(where: { $0 < 0 || $0 >= limit }) {
            throw PackError(.dataError, "label \(raw[bad]) of image \(bad) is outside " + (classes.isEmpty ? "0...\(Int32.max)" : "the \(classes.count) classes of the shard's class list"), location: name)
        }
        self.labels = raw.map { Int32($0) }
        split = file.metadata["split"]
    }
}

/// Where shards come from.
public enum ShardSource: Sendable {
    /// Shard files, in this order.
    case files([String])
    /// Every `*.safetensors.lz4` / `*.safetensors` in a directory, sorted by name.
    case directory(String)
    /// Shard frames back to back on a file descriptor (0 for stdin); read once.
    case stream(fileDescriptor: Int32, name: String)

    /// The source as errors name it.
    public var name: String {
        switch self {
        case let .files(f): f.count == 1 ? f[0] : "\(f.first ?? "") (+\(f.count - 1) files)"
        case let .directory(d): d
        case let .stream(_, name): name
        }
    }

    /// "-" is stdin; a directory lists its shards; anything else is a file.
    public static func path(_ path: String) -> ShardSource {
        if path == "-" { return .stream(fileDescriptor: 0, name: "<stdin>") }
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { return .directory(path) }
        return .files([path])
    }

    /// The shard files of a file or directory source (nil for a stream).
    public func shardFiles() throws(PackError) -> [String]? {
        switch self {
        case let .files(f): return f
        case .stream: return nil
        case let .directory(dir):
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch { throw PackError(.failure, "cannot list directory", location: dir) }
            let shards = names.filter { ($0.hasSuffix(".safetensors.lz4") || $0.hasSuffix(".safetensors")) && !$0.hasPrefix(".") }.sorted()
            guard !shards.isEmpty else { throw PackError(.dataError, "no shards (*.safetensors.lz4) in the directory", location: dir) }
            return shards.map { dir + "/" + $0 }
        }
    }
}

/// Reads the shards of a source one at a time. Files can be read again
/// (epochs); a stream is read once.
public struct ShardReader {
    public let source: ShardSource
    private var files: [String]?
    private var position = 0
    private var stream: TensorStreamReader?
    /// The name errors give the shard `next` returned last (its path, or the stream's shard).
    public private(set) var lastShardName: String

    public init(source: ShardSource) throws(PackError) {
        lastShardName = source.name
        self.source = source
        files = try source.shardFiles()
        if case let .stream(fd, name) = source { stream = TensorStreamReader(fileDescriptor: fd, sourceName: name) }
    }

    /// True when `restart` can begin another pass.
    public var isRepeatable: Bool { files != nil }
    public var fileCount: Int? { files?.count }

    /// Starts another pass over the files, in `order` (indices into the file list) if given.
    public mutating func restart(order: [Int]? = nil) {
        guard let f = files else { return }
        if let order { files = order.map { f[$0] } }
        position = 0
    }

    /// The next shard, or nil at the end of the pass.
    public mutating func next() throws(PackError) -> Shard? {
        if let files {
            guard position < files.count else { return nil }
            let path = files[position]
            position += 1
            let file: TensorFile
            lastShardName = path
            do { file = try TensorFile(contentsOf: path) } catch { throw PackError(error, at: path) }
            return try Shard(file, name: path)
        }
        guard var s = stream else { return nil }
        defer { stream = s }
        let name = "\(s.sourceName) (shard \(s.index + 1))"
        lastShardName = name
        let file: TensorFile
        do {
            guard let f = try s.next() else { return nil }
            file = f
        } catch { throw PackError(error, at: name) }
        return try Shard(file, name: name)
    }
}
