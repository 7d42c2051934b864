import FileFormats
import Supernet
import System

/// The one arch a checkpoint can evaluate, and why.
public struct ServedArch: Sendable, Equatable {
    public var arch: Arch
    /// What the checkpoint is, for errors ("one subnet trained stand-alone ...").
    public var origin: String
}

extension Checkpoint {
    /// The subnet a stand-alone checkpoint (`train-supernet --arch`) was trained as; nil
    /// for a supernet. Its other weights are untrained, so it serves that arch only.
    public func standaloneArch() throws(Failure) -> Arch? {
        guard let v = training?.info["options"]?["standalone_arch"], v != .null else { return nil }
        do { return try Arch(json: v) } catch { throw .data("the checkpoint's stand-alone arch is malformed (\(error))") }
    }

    /// The one arch this checkpoint serves: an exported subnet's, or a stand-alone
    /// checkpoint's; nil for a supernet (any arch of its space).
    public func servedArch() throws(Failure) -> ServedArch? {
        if let a = exportedArch { return ServedArch(arch: a, origin: "an exported subnet (export-subnet)") }
        return try standaloneArch().map { ServedArch(arch: $0, origin: "one subnet trained stand-alone (train-supernet --arch)") }
    }

    /// Nil when `arch` can be evaluated, else why not, naming the first field that differs.
    public static func refusal(of arch: Arch, served: ServedArch?) -> String? {
        guard let only = served?.arch, arch != only else { return nil }
        let fields: [(String, String, String)] = [
            ("resolution", String(arch.resolution), String(only.resolution)),
            ("width", "\(arch.width)", "\(only.width)"), ("depth", "\(arch.depth)", "\(only.depth)"),
            ("kernel_size", "\(arch.kernelSize)", "\(only.kernelSize)"), ("expand_ratio", "\(arch.expandRatio)", "\(only.expandRatio)"),
        ]
        let (key, given, held) = fields.first { $0.1 != $0.2 } ?? ("arch", "", "")
        return "the checkpoint is \(served?.origin ?? "") and serves only that arch: '\(key)' is \(given), the checkpoint's subnet has \(held)"
    }
}
