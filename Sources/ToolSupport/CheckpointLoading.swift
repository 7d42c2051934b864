#if canImport(Glibc)
import Glibc
#endif
import FileFormats
import Supernet

/// Reads a checkpoint: a missing file is a runtime failure (1), a file that
/// is not a checkpoint or does not fit the space is bad data (65).
public func loadCheckpoint(_ path: String, space spacePath: String?) throws -> Checkpoint {
    guard access(path, R_OK) == 0 else {
        throw ToolError.failure("cannot read the checkpoint: \(String(cString: strerror(errno)).lowercased())", in: path)
    }
    var given: SearchSpace?
    if let spacePath {
        do { given = try SearchSpace(contentsOf: spacePath) } catch {
            throw ToolError(.dataError, error.message.hasPrefix(spacePath) ? error.message : "\(spacePath): \(error.message)")
        }
    }
    do { return try Checkpoint(contentsOf: path, space: given) } catch {
        throw ToolError.data(error.message, in: path)
    }
}
