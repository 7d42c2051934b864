import FileFormats
import System

/// A subnet exported as a model of its own (`export-subnet`): the official static
/// subnet's tensors (`StaticSubnet`, names and order of AttentiveNAS
/// `get_active_subnet(preserve_weight=True).state_dict()`) and, in `__metadata__`,
/// `format` "alphanet-static-subnet", `version`, the `arch` and the `space` it was cut
/// from, plus what its writer adds (the input resolution, normalisation, evaluation
/// transform, calibration and source checkpoint).
public enum ExportedSubnet {
    public static let format = "alphanet-static-subnet"
    public static let version = 1

    /// The file for `arch` cut from `weights` (BN statistics as they are in `weights`).
    public static func file(arch: Arch, space: SearchSpace, weights: SupernetWeights, metadata: [String: String] = [:]) -> TensorFile {
        var file = TensorFile()
        for (name, t) in StaticSubnet(arch: arch, space: space, layout: weights.layout).tensors(from: weights) { file[name] = t }
        var meta = metadata
        meta["format"] = format
        meta["version"] = String(version)
        meta["arch"] = arch.merged().jsonText
        meta["space"] = space.json.jsonText
        file.metadata = meta
        return file
    }

    /// Whether `file` says it is an exported subnet.
    public static func isExported(_ file: TensorFile) -> Bool { file.metadata["format"] == format }

    /// The space, arch and supernet-shaped weights of an exported subnet: its tensors in
    /// their places, every other value 0, so the supernet computes exactly the subnet.
    public static func read(_ file: TensorFile) throws(Failure) -> (space: SearchSpace, arch: Arch, weights: SupernetWeights) {
        guard isExported(file) else { throw .data("not an exported subnet (no format '\(format)' in its metadata)") }
        guard file.metadata["version"].flatMap(Int.init) == version else {
            throw .data("exported subnet version \(file.metadata["version"] ?? "none") is not supported (this build reads version \(version))")
        }
        let space: SearchSpace, arch: Arch
        do {
            space = try SearchSpace(json: try JSONValue.parse(file.metadata["space"] ?? ""))
        } catch { throw .data("the exported subnet's space is missing or invalid: \(error)") }
        do {
            arch = try Arch(json: try JSONValue.parse(file.metadata["arch"] ?? ""))
            var check = arch
            if let r = space.resolutions.first { check.resolution = r }
            try check.validate(in: space)
        } catch { throw .data("the exported subnet's arch is missing or does not fit its space: \(error)") }
        var weights = SupernetWeights(layout: SupernetLayout(space: space))
        do { try StaticSubnet(arch: arch, space: space, layout: weights.layout).insert(file, into: &weights) } catch {
            throw .data("the exported subnet does not fit its arch: \(error)")
        }
        return (space, arch, weights)
    }
}
