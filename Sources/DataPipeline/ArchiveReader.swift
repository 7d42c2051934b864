import CArchive

/// One member of an archive: its path inside the archive and whether it is a
/// regular file (directories, links and devices are passed over).
struct ArchiveMember {
    var path: String
    var isRegularFile: Bool
    var size: Int
}

/// Why an archive could not be read; `fatal` means no member after this one
/// can be read either.
struct ArchiveError: Error, CustomStringConvertible {
    var message: String
    var fatal: Bool
    var description: String { message }
}

/// Sequential reading of a tar (any format and compression libarchive knows,
/// plus "raw" for a single compressed file such as an idx.gz), from a file or
/// from memory (a tar inside a tar). Each C call is wrapped here once.
final class ArchiveReader {
    private let handle: OpaquePointer
    /// Keeps the bytes of an in-memory archive alive as long as libarchive reads them.
    private let memory: UnsafeMutableRawBufferPointer?
    private var entry: OpaquePointer?

    /// Opens `path`; with `raw`, a file that is no archive reads as one member.
    init(path: String, raw: Bool = false) throws(ArchiveError) {
        guard let a = archive_read_new() else { throw ArchiveError(message: "out of memory", fatal: true) }
        handle = a
        memory = nil
        archive_read_support_filter_all(a)
        archive_read_support_format_all(a)
        if raw { archive_read_support_format_raw(a) }
        guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK else {
            let why = ArchiveReader.errorString(a)
            archive_read_free(a)
            throw ArchiveError(message: why, fatal: true)
        }
    }

    /// Opens an archive held in memory (the bytes are copied).
    init(bytes: [UInt8]) throws(ArchiveError) {
        guard let a = archive_read_new() else { throw ArchiveError(message: "out of memory", fatal: true) }
        handle = a
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { src in m.copyMemory(from: src) }
        memory = m
        archive_read_support_filter_all(a)
        archive_read_support_format_all(a)
        guard archive_read_open_memory(a, m.baseAddress, bytes.count) == ARCHIVE_OK else {
            let why = ArchiveReader.errorString(a)
            archive_read_free(a)
            m.deallocate()
            throw ArchiveError(message: why, fatal: true)
        }
    }

    deinit {
        archive_read_free(handle)
        memory?.deallocate()
    }

    static func errorString(_ a: OpaquePointer) -> String {
        guard let s = archive_error_string(a) else { return "unreadable archive" }
        return String(cString: s).lowercased()
    }

    /// True when the archive is no archive but a single file read raw.
    var isRaw: Bool { archive_format(handle) == ARCHIVE_FORMAT_RAW }

    /// The next member, or nil at the end of the archive.
    func next() throws(ArchiveError) -> ArchiveMember? {
        let r = archive_read_next_header(handle, &entry)
        if r == ARCHIVE_EOF { return nil }
        if r < ARCHIVE_WARN { throw ArchiveError(message: ArchiveReader.errorString(handle), fatal: r == ARCHIVE_FATAL) }
        guard let entry else { return nil }
        let path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        // AE_IFREG = 0o100000 (a macro with a cast, not imported).
        let isRegular = archive_entry_filetype(entry) == 0o100000
        return ArchiveMember(path: path, isRegularFile: isRegular, size: Int(archive_entry_size(entry)))
    }

    /// The whole data of the current member.
    func readData(sizeHint: Int = 0) throws(ArchiveError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(max(sizeHint, 0))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { archive_read_data(handle, $0.baseAddress, $0.count) }
            if n == 0 { return out }
            if n < 0 {
                throw ArchiveError(message: ArchiveReader.errorString(handle), fatal: Int32(n) == ARCHIVE_FATAL)
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// At most `count` first bytes of the current member.
    func readPrefix(_ count: Int) throws(ArchiveError) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: count)
        let n = chunk.withUnsafeMutableBytes { archive_read_data(handle, $0.baseAddress, $0.count) }
        if n < 0 { throw ArchiveError(message: ArchiveReader.errorString(handle), fatal: Int32(n) == ARCHIVE_FATAL) }
        return Array(chunk[0..<n])
    }
}
