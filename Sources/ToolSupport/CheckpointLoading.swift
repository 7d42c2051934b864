import FileFormats
import Supernet
import System

/// Reads a checkpoint, with the space of `spacePath` when given (needed for a plain
/// state_dict). A missing or unreadable file is a runtime failure (1), a file that is
/// not a checkpoint or does not fit the space bad data (65); errors name the file.
public func loadCheckpoint(_ path: String, space spacePath: String?) throws(Failure) -> Checkpoint {
    let given = try spacePath.map { p throws(Failure) in try SearchSpace(contentsOf: p) }
    return try Checkpoint(contentsOf: path, space: given)
}
