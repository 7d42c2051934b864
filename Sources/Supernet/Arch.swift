import System
import FileFormats

/// A subnet of a search space, with the official keys: `resolution`,
/// `width` (9: first conv, mb1..mb7, last conv), `depth`, `kernel_size`,
/// `expand_ratio` (7 each, one per block stage).
public struct Arch: Sendable, Hashable, Codable {
    public var resolution: Int
    public var width: [Int]
    public var depth: [Int]
    public var kernelSize: [Int]
    public var expandRatio: [Int]

    public init(resolution: Int, width: [Int], depth: [Int], kernelSize: [Int], expandRatio: [Int]) {
        self.resolution = resolution
        self.width = width
        self.depth = depth
        self.kernelSize = kernelSize
        self.expandRatio = expandRatio
    }

    public static let keys = ["resolution", "width", "depth", "kernel_size", "expand_ratio"]
}

/// A malformed arch or a value outside the space; `field` names the key.
public typealias ArchError = FieldError

extension Arch {
    /// Reads the official keys of an arch JSON object; other keys are ignored.
    public init(json: JSONValue) throws(ArchError) {
        guard case .object = json else { throw ArchError(field: "arch", message: "expected a JSON object") }
        func int(_ key: String) throws(ArchError) -> Int {
            guard let v = json[key] else { throw ArchError(field: key, message: "missing") }
            guard let i = v.intValue else { throw ArchError(field: key, message: "expected an integer, found \(v.kindName)") }
            return Int(i)
        }
        func list(_ key: String, count: Int) throws(ArchError) -> [Int] {
            guard let v = json[key] else { throw ArchError(field: key, message: "missing") }
            guard let a = v.arrayValue else { throw ArchError(field: key, message: "expected a list of \(count) integers, found \(v.kindName)") }
            guard a.count == count else { throw ArchError(field: key, message: "expected \(count) integers, found \(a.count)") }
            var out: [Int] = []
            for (i, x) in a.enumerated() {
                guard let n = x.intValue else { throw ArchError(field: "\(key)[\(i)]", message: "expected an integer, found \(x.kindName)") }
                out.append(Int(n))
            }
            return out
        }
        self.init(resolution: try int("resolution"), width: try list("width", count: 9), depth: try list("depth", count: 7),
                  kernelSize: try list("kernel_size", count: 7), expandRatio: try list("expand_ratio", count: 7))
    }

    /// Checks every value against the space's choice lists.
    public func validate(in space: SearchSpace) throws(ArchError) {
        guard space.resolutions.contains(resolution) else {
            throw ArchError(field: "resolution", message: "\(resolution) is not in the space's \(space.resolutions)")
        }
        func check(_ key: String, _ values: [Int], _ choices: [[Int]]) throws(ArchError) {
            for (i, (v, c)) in zip(values, choices).enumerated() where !c.contains(v) {
                throw ArchError(field: "\(key)[\(i)]", message: "\(v) is not in the space's \(c)")
            }
        }
        try check("width", width, space.widthChoices)
        try check("depth", depth, space.depthChoices)
        try check("kernel_size", kernelSize, space.kernelChoices)
        try check("expand_ratio", expandRatio, space.expandChoices)
    }

    /// `line` with the official keys set to this arch; every other key is kept
    /// in place, and missing official keys are appended in the official order.
    public func merged(into line: JSONValue = .object([])) -> JSONValue {
        var out = line
        out["resolution"] = JSONValue(resolution)
        out["width"] = JSONValue(width)
        out["depth"] = JSONValue(depth)
        out["kernel_size"] = JSONValue(kernelSize)
        out["expand_ratio"] = JSONValue(expandRatio)
        return out
    }

    /// A canonical text key for caches and de-duplication.
    public var key: String { merged().jsonText }
}
