import FileFormats
import Supernet
import System

extension Checkpoint {
    /// The subnet a stand-alone checkpoint (`train-supernet --arch`) was trained as; nil
    /// for a supernet. Its other weights are untrained, so it serves that arch only.
    public func standaloneArch() throws(Failure) -> Arch? {
        guard let v = training?.info["options"]?["standalone_arch"], v != .null else { return nil }
        do { return try Arch(json: v) } catch { throw .data("the checkpoint's stand-alone arch is malformed (\(error))") }
    }

    /// Nil when `arch` is the stand-alone subnet (or the checkpoint is a supernet), else
    /// why not, naming the first field that differs.
    public static func refusal(of arch: Arch, standalone: Arch?) -> String? {
        guard let only = standalone, arch != only else { return nil }
        let fields: [(String, String, String)] = [
            ("resolution", String(arch.resolution), String(only.resolution)),
            ("width", "\(arch.width)", "\(only.width)"), ("depth", "\(arch.depth)", "\(only.depth)"),
            ("kernel_size", "\(arch.kernelSize)", "\(only.kernelSize)"), ("expand_ratio", "\(arch.expandRatio)", "\(only.expandRatio)"),
        ]
        let (key, given, trained) = fields.first { $0.1 != $0.2 } ?? ("arch", "", "")
        return "the checkpoint holds one subnet trained stand-alone (train-supernet --arch) and serves only that arch: '\(key)' is \(given), the checkpoint's subnet has \(trained)"
    }
}
