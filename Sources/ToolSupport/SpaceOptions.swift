import ArgumentParser
import FileFormats
import Supernet
import System

/// `--space FILE`, shared by every tool that reads archs.
public struct SpaceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Search space JSON (supernet_config layout), e.g. pipelines/spaces/tiny.json or pipelines/spaces/alphanet.json.", valueName: "file"))
    public var space: String

    public init() {}

    /// Reads the space; a missing or malformed file is bad input (65).
    public func load() throws -> SearchSpace {
        do {
            return try SearchSpace(contentsOf: space)
        } catch {
            throw Failure(.dataError, error.message.hasPrefix(space) ? error.message : "\(space): \(error.message)")
        }
    }
}

/// Reading arch lines: each line is checked and its errors name the source,
/// the line number and the field.
public struct ArchLine {
    public var json: JSONValue
    public var arch: Arch
    public var location: String
}

extension JSONLinesReader {
    /// The next arch line, validated against `space` (resolution not checked
    /// when `anyResolution`), or nil at end of input.
    public mutating func nextArch(in space: SearchSpace, anyResolution: Bool = false) throws -> ArchLine? {
        guard let json = try next() else { return nil }
        do {
            let arch = try Arch(json: json)
            var check = arch
            if anyResolution, let r = space.resolutions.first { check.resolution = r }
            try check.validate(in: space)
            return ArchLine(json: json, arch: arch, location: location)
        } catch {
            throw error.located(at: location)
        }
    }
}

/// An `--arch` value: an arch JSON object, or `@FILE` for the first arch line of a
/// file (`@-`: stdin). Checked against the space at any resolution within
/// `Arch.resolutionRange` (the forward pass runs at whatever resolution the arch names).
public enum ArchArgument {
    public static func read(_ text: String, in space: SearchSpace) throws -> Arch {
        let json: JSONValue
        let location: String
        if text.hasPrefix("@") {
            var reader = try JSONLinesReader(path: String(text.dropFirst()))
            defer { reader.close() }
            guard let first = try reader.next() else { throw Failure.data("no arch line", at: reader.sourceName) }
            json = first
            location = reader.location
        } else {
            do { json = try JSONValue.parse(text) } catch { throw Failure.usage("\(error)", at: "--arch") }
            location = "--arch"
        }
        do {
            let a = try Arch(json: json)
            var check = a
            if let r = space.resolutions.first { check.resolution = r }
            try check.validate(in: space)
            return a
        } catch let e as any ReportableError {
            throw e.located(at: location)
        }
    }
}
