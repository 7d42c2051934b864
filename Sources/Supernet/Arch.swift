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
    /// Bounds every arch of a MobileNetV3-like space keeps, whatever the space: checked
    /// when an arch is read, so a line claiming resolution 10^9 or kernel 4 is bad data
    /// before any FLOPs are counted or memory allocated (the space's own lists are
    /// checked by `validate(in:)`).
    public static let resolutionRange = 8...1024
    public static let widthRange = 1...8192
    public static let depthRange = 1...32
    public static let kernelRange = 1...15
    public static let expandRange = 1...16

    /// Channels of the head's final expand layer (official `last_conv.final_expand_layer`:
    /// six times the last stage's width), the features the global pooling averages.
    public var finalExpandChannels: Int { width[7] * 6 }

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
        func bounded(_ key: String, _ values: [Int], _ range: ClosedRange<Int>, odd: Bool = false) throws(ArchError) -> [Int] {
            for (i, v) in values.enumerated() {
                guard range.contains(v) else { throw ArchError(field: "\(key)[\(i)]", message: "\(v) is outside \(range)") }
                guard !odd || v % 2 == 1 else { throw ArchError(field: "\(key)[\(i)]", message: "\(v) is not an odd kernel size") }
            }
            return values
        }
        let resolution = try int("resolution")
        guard Arch.resolutionRange.contains(resolution) else {
            throw ArchError(field: "resolution", message: "\(resolution) is outside \(Arch.resolutionRange)")
        }
        self.init(resolution: resolution,
                  width: try bounded("width", try list("width", count: 9), Arch.widthRange),
                  depth: try bounded("depth", try list("depth", count: 7), Arch.depthRange),
                  kernelSize: try bounded("kernel_size", try list("kernel_size", count: 7), Arch.kernelRange, odd: true),
                  expandRatio: try bounded("expand_ratio", try list("expand_ratio", count: 7), Arch.expandRange))
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
