import System
import FileFormats

/// One stage of the official `supernet_config`: `first_conv`, `mb1`...`mb7` or
/// `last_conv`. Choice lists are kept in file order; `c` lists widths.
public struct StageSpec: Sendable, Equatable {
    public var name: String
    public var widths: [Int]
    public var depths: [Int]
    public var kernelSizes: [Int]
    public var expandRatios: [Int]
    public var stride: Int
    public var activation: String
    public var useSE: Bool

    public var maxWidth: Int { widths.max() ?? 0 }
    public var maxDepth: Int { depths.max() ?? 0 }
    public var maxKernel: Int { kernelSizes.max() ?? 0 }
    public var maxExpand: Int { expandRatios.max() ?? 0 }
}

/// A search space with the structure of the official AttentiveNAS/AlphaNet
/// `supernet_config`: resolutions, first_conv, mb1..mb7, last_conv, use_v3_head,
/// plus `n_classes` and the BatchNorm settings.
public struct SearchSpace: Sendable, Equatable {
    public static let blockStageNames = (1...7).map { "mb\($0)" }
    public static let stageNames = ["first_conv"] + blockStageNames + ["last_conv"]

    public var resolutions: [Int]
    public var firstConv: StageSpec
    /// mb1...mb7.
    public var stages: [StageSpec]
    public var lastConv: StageSpec
    public var useV3Head: Bool
    public var nClasses: Int
    public var bnMomentum: Double
    public var bnEps: Double
    /// The file's JSON, kept so checkpoints can embed the space verbatim.
    public var json: JSONValue

    /// Choice lists in the order of the arch keys: width has 9 entries
    /// (first conv, 7 stages, last conv), the others 7.
    public var widthChoices: [[Int]] { [firstConv.widths] + stages.map(\.widths) + [lastConv.widths] }
    public var depthChoices: [[Int]] { stages.map(\.depths) }
    public var kernelChoices: [[Int]] { stages.map(\.kernelSizes) }
    public var expandChoices: [[Int]] { stages.map(\.expandRatios) }
}


extension SearchSpace {
    /// Parses a space file: either `{"supernet_config": {...}, "n_classes": N, ...}`
    /// (the shipped files) or a bare supernet_config object (n_classes 1000).
    public init(json: JSONValue) throws(Failure) {
        guard case .object = json else { throw .data("a search space must be a JSON object") }
        let config = json["supernet_config"] ?? json
        guard case .object = config else { throw .data("supernet_config is not an object") }

        func intList(_ v: JSONValue?, _ field: String, required: Bool = true) throws(Failure) -> [Int] {
            guard let v else {
                if required { throw .data("missing \(field)") }
                return []
            }
            if let i = v.intValue { return [Int(i)] }
            guard let a = v.arrayValue, !a.isEmpty else { throw .data("\(field) must be a non-empty list of integers") }
            var out: [Int] = []
            for x in a {
                guard let i = x.intValue, i > 0 else { throw .data("\(field) must be a list of positive integers") }
                out.append(Int(i))
            }
            return out
        }

        func stage(_ name: String, block: Bool) throws(Failure) -> StageSpec {
            guard let s = config[name], case .object = s else { throw .data("missing stage \(name)") }
            let act = s["act_func"]?.stringValue ?? "swish"
            guard ["swish", "h_swish", "relu"].contains(act) else {
                throw .data("\(name).act_func '\(act)' is not supported (swish, h_swish, relu)")
            }
            let spec = StageSpec(
                name: name,
                widths: try intList(s["c"], "\(name).c"),
                depths: block ? try intList(s["d"], "\(name).d") : [1],
                kernelSizes: block ? try intList(s["k"], "\(name).k") : [],
                expandRatios: block ? try intList(s["t"], "\(name).t") : [],
                stride: Int(s["s"]?.intValue ?? 1),
                activation: act,
                useSE: s["se"]?.boolValue ?? false)
            guard spec.stride == 1 || spec.stride == 2 else { throw .data("\(name).s must be 1 or 2") }
            for k in spec.kernelSizes where k % 2 == 0 || k > 7 {
                throw .data("\(name).k: kernel size \(k) is not one of 1, 3, 5, 7")
            }
            return spec
        }

        resolutions = try intList(config["resolutions"], "resolutions")
        firstConv = try stage("first_conv", block: false)
        var st: [StageSpec] = []
        for n in SearchSpace.blockStageNames { st.append(try stage(n, block: true)) }
        stages = st
        lastConv = try stage("last_conv", block: false)
        useV3Head = config["use_v3_head"]?.boolValue ?? false
        guard useV3Head else { throw .data("only use_v3_head: true spaces are supported (as every official AlphaNet space)") }
        let classes = json["n_classes"]?.intValue ?? config["n_classes"]?.intValue ?? 1000
        guard classes > 0 else { throw .data("n_classes must be positive") }
        nClasses = Int(classes)
        bnMomentum = json["bn_momentum"]?.doubleValue ?? 0.0
        bnEps = json["bn_eps"]?.doubleValue ?? 1e-5
        self.json = json
    }

    /// Reads a space file.
    public init(contentsOf path: String) throws(Failure) {
        let bytes = try readWholeFile(path)
        let json: JSONValue
        do {
            json = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
        } catch {
            throw error.located(at: path)
        }
        do { try self.init(json: json) } catch { throw error.located(at: path) }
    }

    /// The largest subnet: the maximum of every choice list.
    public var maxArch: Arch {
        Arch(resolution: resolutions.max() ?? 0,
             width: widthChoices.map { $0.max() ?? 0 }, depth: depthChoices.map { $0.max() ?? 0 },
             kernelSize: kernelChoices.map { $0.max() ?? 0 }, expandRatio: expandChoices.map { $0.max() ?? 0 })
    }

    /// The smallest subnet: the minimum of every choice list.
    public var minArch: Arch {
        Arch(resolution: resolutions.min() ?? 0,
             width: widthChoices.map { $0.min() ?? 0 }, depth: depthChoices.map { $0.min() ?? 0 },
             kernelSize: kernelChoices.map { $0.min() ?? 0 }, expandRatio: expandChoices.map { $0.min() ?? 0 })
    }
}
