import ArgumentParser
import FileFormats
@_exported import System
import System

/// Thrown when stdout's reader has gone away (`| head`): the tool ends quietly.
public struct BrokenPipe: Error {}

/// Runs a tool body: a thrown `ReportableError` (the library's one error model)
/// becomes one `tool: error: location: message` line on stderr and its exit
/// status; a closed downstream pipe ends the tool quietly with status 0. The only
/// place errors become exit codes.
public func runTool(_ body: () throws -> Void) throws {
    ignoreSigpipe()
    do {
        try body()
        try StandardOutput.shared.flush()
    } catch is BrokenPipe {
        throw ExitCode(0)
    } catch let e as ValidationError {
        throw e
    } catch let e as ExitCode {
        throw e
    } catch let e as any ReportableError {
        StandardOutput.shared.flushIgnoringErrors()
        Diagnostics.error(e.description)
        throw ExitCode(e.status.rawValue)
    } catch {
        StandardOutput.shared.flushIgnoringErrors()
        Diagnostics.error(escapedForOneLine("\(error)"))
        throw ExitCode(ExitStatus.failure.rawValue)
    }
}
