#if canImport(Glibc)
import Glibc
#endif
import Foundation
import FileFormats
import System

/// Where an image's class comes from.
enum ClassRef: Sendable {
    /// A WordNet id or folder name, looked up in the class list.
    case name(String)
    /// An index into the class list (IDX labels).
    case index(Int)
    /// A flat validation file, labelled by `ValidationLabels`.
    case fileName(String)
}

/// One input image before decoding.
struct PackItem: Sendable {
    enum Payload: Sendable {
        case encoded([UInt8])
        case pixels(RGBImage)
        case unreadable(String)
    }
    /// Names the image in messages and index.json: `input:member[:member]`.
    var source: String
    var payload: Payload
    var classRef: ClassRef
}

/// The kinds of INPUT, recognised by content: a directory in ImageFolder
/// layout; a tar (any compression) whose members are class tars (ILSVRC2012
/// train), class folders (ImageFolder) or flat images (ILSVRC2012 val); an
/// IDX images file and its IDX labels file (MNIST layout, optionally gzipped).
enum PackInputKind {
    case directory(String)
    case archive(String)
    case idx(images: String, labels: String)
}

enum PackInputs {
    /// IDX magic numbers: 0x00000803 (uint8 images, 3 dims), 0x00000801 (uint8 labels).
    static let idxImagesMagic: [UInt8] = [0, 0, 8, 3]
    static let idxLabelsMagic: [UInt8] = [0, 0, 8, 1]

    static func classify(_ paths: [String]) throws(PackError) -> [PackInputKind] {
        var kinds: [PackInputKind] = []
        var idxImages: [String] = [], idxLabels: [String] = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { throw PackError(.failure, "cannot open input: \(errnoMessage())", location: path) }
            if (st.st_mode & S_IFMT) == S_IFDIR { kinds.append(.directory(path)); continue }
            let reader: ArchiveReader
            do { reader = try ArchiveReader(path: path, raw: true) } catch { throw PackError(.dataError, "cannot read input: \(error)", location: path) }
            var isIDX = false
            do {
                if try reader.next() != nil, reader.isRaw {
                    let head = try reader.readPrefix(4)
                    if head == idxImagesMagic { idxImages.append(path); isIDX = true }
                    else if head == idxLabelsMagic { idxLabels.append(path); isIDX = true }
                    else { throw PackError(.dataError, "not a tar archive, image folder or IDX file", location: path) }
                }
            } catch let e as PackError { throw e } catch { throw PackError(.dataError, "cannot read input: \(error)", location: path) }
            if !isIDX { kinds.append(.archive(path)) }
        }
        guard idxImages.count == idxLabels.count else {
            throw PackError(.usage, "IDX inputs come in pairs: \(idxImages.count) image file(s) but \(idxLabels.count) label file(s)")
        }
        for (i, l) in zip(idxImages, idxLabels) { kinds.append(.idx(images: i, labels: l)) }
        return kinds
    }

    /// Walks every image of every input in a deterministic order (inputs in
    /// the order given; directory entries sorted by name; archive members in
    /// archive order), calling `visit` for each. With `namesOnly`, no data is
    /// read: items carry an empty payload, for collecting class names.
    static func walk(_ kinds: [PackInputKind], namesOnly: Bool, visit: (PackItem) throws -> Void) throws {
        for kind in kinds {
            switch kind {
            case let .directory(root): try walkDirectory(root, namesOnly: namesOnly, visit: visit)
            case let .archive(path):
                let reader: ArchiveReader
                do { reader = try ArchiveReader(path: path) } catch { throw PackError(.dataError, "cannot read archive: \(error)", location: path) }
                try walkArchive(reader, name: path, flatClass: nil, namesOnly: namesOnly, visit: visit)
            case let .idx(images, labels): try walkIDX(images: images, labels: labels, namesOnly: namesOnly, visit: visit)
            }
        }
    }

    static func isTarName(_ name: String) -> Bool { name.lowercased().hasSuffix(".tar") }

    static func stem(_ name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        guard let dot = base.lastIndex(of: ".") else { return base }
        return String(base[..<dot])
    }

    /// A tar's members: class tars (`n01440764.tar`, class = name without
    /// `.tar`, opened in memory), members in folders (class = the parent
    /// folder's name), or flat files (class from the validation labels, or
    /// `flatClass` inside a class tar).
    static func walkArchive(_ reader: ArchiveReader, name: String, flatClass: String?, namesOnly: Bool, visit: (PackItem) throws -> Void) throws {
        while true {
            let member: ArchiveMember
            do {
                guard let m = try reader.next() else { return }
                member = m
            } catch {
                // A damaged header: nothing after it can be found.
                try visit(PackItem(source: "\(name)", payload: .unreadable("archive unreadable from here on: \(error)"), classRef: .name("")))
                return
            }
            guard member.isRegularFile else { continue }
            var path = member.path
            while path.hasPrefix("./") { path.removeFirst(2) }
            let parts = path.split(separator: "/").map(String.init)
            guard let base = parts.last, !base.hasPrefix(".") else { continue }
            let source = "\(name):\(path)"
            let classRef: ClassRef
            if let flatClass { classRef = .name(flatClass) }
            else if parts.count >= 2 { classRef = .name(parts[parts.count - 2]) }
            else if isTarName(base) { classRef = .name(stem(base)) }
            else { classRef = .fileName(base) }
            if namesOnly {
                try visit(PackItem(source: source, payload: .encoded([]), classRef: classRef))
                continue
            }
            let data: [UInt8]
            do { data = try reader.readData(sizeHint: member.size) } catch {
                try visit(PackItem(source: source, payload: .unreadable("unreadable member: \(error)"), classRef: classRef))
                if error.fatal { return }
                continue
            }
            // A class tar inside the training tar, recognised by the ustar magic at byte 257.
            if flatClass == nil, data.count > 262, Array(data[257..<262]) == Array("ustar".utf8), case let .name(cls) = classRef, isTarName(base) || parts.count == 1 {
                let inner: ArchiveReader
                do { inner = try ArchiveReader(bytes: data) } catch {
                    try visit(PackItem(source: source, payload: .unreadable("unreadable class archive: \(error)"), classRef: classRef))
                    continue
                }
                try walkArchive(inner, name: source, flatClass: cls, namesOnly: false, visit: visit)
                continue
            }
            try visit(PackItem(source: source, payload: .encoded(data), classRef: classRef))
        }
    }

    static func sortedEntries(_ dir: String) throws(PackError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        } catch {
            throw PackError(.failure, "cannot list directory", location: dir)
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// ImageFolder: `root/<class>/**/<image>`; files directly under `root`
    /// are flat validation images (or class tars, `<wnid>.tar`).
    static func walkDirectory(_ root: String, namesOnly: Bool, visit: (PackItem) throws -> Void) throws {
        for entry in try sortedEntries(root) {
            let path = root.hasSuffix("/") ? root + entry : root + "/" + entry
            if isDirectory(path) {
                try walkClassFolder(path, className: entry, namesOnly: namesOnly, visit: visit)
            } else if isTarName(entry) {
                if namesOnly { try visit(PackItem(source: path, payload: .encoded([]), classRef: .name(stem(entry)))); continue }
                let reader: ArchiveReader
                do { reader = try ArchiveReader(path: path) } catch {
                    try visit(PackItem(source: path, payload: .unreadable("unreadable class archive: \(error)"), classRef: .name(stem(entry))))
                    continue
                }
                try walkArchive(reader, name: path, flatClass: stem(entry), namesOnly: false, visit: visit)
            } else {
                try visit(PackItem(source: path, payload: namesOnly ? .encoded([]) : readFile(path), classRef: .fileName(entry)))
            }
        }
    }

    static func walkClassFolder(_ dir: String, className: String, namesOnly: Bool, visit: (PackItem) throws -> Void) throws {
        // Listing names (class names, and the file count for the progress ETA and the
        // shard writer): once one entry of this folder has proved to be a file (so the
        // class exists), the rest of its names with an extension are counted as files
        // without a stat each (ImageNet has 1,300 per class). A dotted subfolder then
        // counts as one file: the ETA is a little off and the shard it lands in is
        // written whole instead of streamed; the output is the same.
        var sawFile = false
        for entry in try sortedEntries(dir) {
            let path = dir + "/" + entry
            if namesOnly && sawFile && entry.contains(".") {
                try visit(PackItem(source: path, payload: .encoded([]), classRef: .name(className)))
            } else if isDirectory(path) {
                try walkClassFolder(path, className: className, namesOnly: namesOnly, visit: visit)
            } else {
                try visit(PackItem(source: path, payload: namesOnly ? .encoded([]) : readFile(path), classRef: .name(className)))
                sawFile = true
            }
        }
    }

    static func readFile(_ path: String) -> PackItem.Payload {
        do { return .encoded(try readWholeFile(path)) } catch { return .unreadable("unreadable file: \(error)") }
    }

    static func readIDX(_ path: String) throws(PackError) -> [UInt8] {
        do {
            let reader = try ArchiveReader(path: path, raw: true)
            guard try reader.next() != nil else { throw PackError(.dataError, "empty IDX file", location: path) }
            return try reader.readData()
        } catch let e as PackError { throw e } catch { throw PackError(.dataError, "cannot read IDX file: \(error)", location: path) }
    }

    /// IDX (MNIST layout): magic 00 00 08 03, then big-endian N, rows, cols and
    /// N*rows*cols greyscale bytes; labels: 00 00 08 01, N, then N bytes. The
    /// label is the class index. Images come out grey replicated to RGB.
    static func walkIDX(images: String, labels: String, namesOnly: Bool, visit: (PackItem) throws -> Void) throws {
        let lab = try readIDX(labels)
        func be32(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }
        guard lab.count >= 8, be32(lab, 4) == lab.count - 8 else { throw PackError(.dataError, "IDX labels: header count does not match the data", location: labels) }
        let n = lab.count - 8
        if namesOnly {
            for i in 0..<n { try visit(PackItem(source: "\(images):\(i)", payload: .encoded([]), classRef: .index(Int(lab[8 + i])))) }
            return
        }
        let img = try readIDX(images)
        guard img.count >= 16 else { throw PackError(.dataError, "IDX images: truncated header", location: images) }
        let count = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12)
        guard count == n else { throw PackError(.dataError, "\(count) images but \(n) labels in \(labels)", location: images) }
        guard rows > 0, cols > 0, img.count == 16 + count * rows * cols else { throw PackError(.dataError, "IDX images: size does not match the header", location: images) }
        let px = rows * cols
        for i in 0..<n {
            var rgb = [UInt8](repeating: 0, count: px * 3)
            for p in 0..<px {
                let v = img[16 + i * px + p]
                rgb[3 * p] = v; rgb[3 * p + 1] = v; rgb[3 * p + 2] = v
            }
            try visit(PackItem(source: "\(images):\(i)", payload: .pixels(RGBImage(width: cols, height: rows, pixels: rgb)), classRef: .index(Int(lab[8 + i]))))
        }
    }
}
