import System
import FileFormats

/// The supernet's tensors in our flat layout: parameters (trained) and
/// buffers (BN running statistics), plus the int64 `num_batches_tracked`
/// counters kept only so a state_dict round-trips.
public struct SupernetWeights: Sendable {
    public let layout: SupernetLayout
    public var parameters: [Float]
    public var buffers: [Float]
    public var batchesTracked: [String: Int64]

    /// Zero-filled weights for `layout` (initialise before use).
    public init(layout: SupernetLayout) {
        self.layout = layout
        parameters = [Float](repeating: 0, count: layout.parameterCount)
        buffers = [Float](repeating: 0, count: layout.bufferCount)
        batchesTracked = [:]
    }

    /// The values of one entry (a copy).
    public func values(of name: String) -> [Float]? {
        guard let e = layout[name] else { return nil }
        switch e.role {
        case .numBatchesTracked: return [Float(batchesTracked[name] ?? 0)]
        case _ where e.role.isParameter: return Array(parameters[e.offset..<(e.offset + e.count)])
        default: return Array(buffers[e.offset..<(e.offset + e.count)])
        }
    }

    /// Sets the values of one entry; `values.count` must match its shape.
    public mutating func set(_ name: String, _ values: [Float]) {
        guard let e = layout[name] else { preconditionFailure("no supernet entry \(name)") }
        precondition(values.count == e.count, "\(name): \(values.count) values for shape \(e.shape)")
        switch e.role {
        case .numBatchesTracked: batchesTracked[name] = Int64(values[0])
        case _ where e.role.isParameter: parameters.replaceSubrange(e.offset..<(e.offset + e.count), with: values)
        default: buffers.replaceSubrange(e.offset..<(e.offset + e.count), with: values)
        }
    }
}

/// State that makes a resumed training run continue exactly.
public struct TrainingState: Sendable, Equatable {
    /// SGD momentum buffers, in the parameter layout.
    public var momentum: [Float]
    /// Optimizer steps taken.
    public var step: Int
    /// Random generator state words (sampling, augmentation, dropout).
    public var randomState: [UInt64]
    /// Free-form JSON the trainer keeps (options, sampler and data positions).
    public var info: JSONValue

    public init(momentum: [Float], step: Int, randomState: [UInt64], info: JSONValue) {
        self.momentum = momentum
        self.step = step
        self.randomState = randomState
        self.info = info
    }
}


/// A checkpoint file (DESIGN.md): a tensor file whose model tensors carry the
/// official state_dict names and shapes, the optimizer momentum under
/// `optimizer.momentum.<name>`, and in `__metadata__` the format, version,
/// step, random state, the space and the trainer's options.
public struct Checkpoint: Sendable {
    public static let format = "alphanet-checkpoint"
    public static let version = 1
    public static let momentumPrefix = "optimizer.momentum."

    public var space: SearchSpace
    public var weights: SupernetWeights
    public var training: TrainingState?
    /// Read from an exported subnet (`ExportedSubnet`): the one arch its weights hold.
    public var exportedArch: Arch?
    /// An exported subnet's metadata (its writer's keys: transform, normalisation, ...).
    public var exportedMetadata: [String: String] = [:]

    public init(space: SearchSpace, weights: SupernetWeights, training: TrainingState? = nil) {
        self.space = space
        self.weights = weights
        self.training = training
    }

    /// The tensor file to save.
    public func tensorFile() -> TensorFile {
        var meta: [String: String] = [
            "format": Checkpoint.format,
            "version": "\(Checkpoint.version)",
            "space": space.json.jsonText,
        ]
        // A K-shot checkpoint's official tensors hold the max subnet's mix (what a reader
        // that knows nothing of K-shot can best use); readers that know remix per subnet.
        var mixed: SupernetWeights?
        if let k = weights.layout.kshot {
            meta["kshot"] = "\(k.config.copies)"
            meta["kshot_temperature"] = "\(k.config.temperature)"
            meta["kshot_hidden"] = "\(k.config.hidden)"
            mixed = weights.materialised(for: space.maxArch, in: space)
        }
        var file = TensorFile()
        for e in weights.layout.entries {
            if e.role == .numBatchesTracked {
                file[e.name] = Tensor([weights.batchesTracked[e.name] ?? 0], shape: [])
            } else if let m = mixed, weights.layout.kshot?.sharedIndex[e.offset] != nil, e.role.isParameter, let v = m.values(of: e.name) {
                file[e.name] = Tensor(v, shape: e.shape)
            } else if let v = weights.values(of: e.name) {
                file[e.name] = Tensor(v, shape: e.shape)
            }
        }
        if let t = training {
            for e in weights.layout.entries where e.role.isParameter {
                file[Checkpoint.momentumPrefix + e.name] = Tensor(Array(t.momentum[e.offset..<(e.offset + e.count)]), shape: e.shape)
            }
            meta["step"] = "\(t.step)"
            meta["random_state"] = JSONValue.array(t.randomState.map { .string(String($0)) }).jsonText
            meta["training"] = t.info.jsonText
        }
        file.metadata = meta
        return file
    }

    /// Saves atomically (temporary name, fsync, rename).
    public func write(to path: String) throws(Failure) {
        try tensorFile().write(to: path, compressed: !path.hasSuffix(".safetensors") || path.hasSuffix(".lz4"))
    }

    /// Reads a checkpoint. Its embedded space is used unless `space` is given;
    /// a file of model tensors alone (an official state_dict converted to
    /// safetensors, optionally with a `module.` prefix) needs `space`.
    public init(file: TensorFile, space given: SearchSpace? = nil) throws(Failure) {
        if ExportedSubnet.isExported(file) {
            let (space, arch, weights) = try ExportedSubnet.read(file)
            if let given, given.json["supernet_config"] != space.json["supernet_config"] {
                throw .data("the subnet was exported from another search space than the one given")
            }
            self.init(space: space, weights: weights)
            exportedArch = arch
            exportedMetadata = file.metadata
            return
        }
        var space = given
        if space == nil, let text = file.metadata["space"] {
            do {
                space = try SearchSpace(json: try JSONValue.parse(text))
            } catch {
                throw .data("the space stored in the checkpoint is invalid: \(error)")
            }
        }
        guard let space else {
            throw .data("the checkpoint holds no search space; give one with --space")
        }
        if let f = file.metadata["format"], f != Checkpoint.format {
            throw .data("not a checkpoint (format '\(f)'; a \(Checkpoint.format) or a converted state_dict is needed)")
        }
        if let v = file.metadata["version"], Int(v) != Checkpoint.version {
            throw .data("checkpoint version \(v) is not supported (this build reads version \(Checkpoint.version))")
        }
        let layout = SupernetLayout(space: space, kshot: try Checkpoint.kshotConfig(file.metadata))
        var weights = SupernetWeights(layout: layout)
        let prefixed = file["module." + (layout.entries.first?.name ?? "")] != nil
        for e in layout.entries {
            let key = prefixed ? "module." + e.name : e.name
            guard let t = file[key] else {
                if e.name.contains("bn_tracking") || e.role == .numBatchesTracked { continue }
                throw .data("tensor \(e.name) is missing: the checkpoint does not fit the space")
            }
            guard t.shape == e.shape || (e.role == .numBatchesTracked && t.count == 1) else {
                throw .data("tensor \(e.name) has shape \(t.shape) but the space needs \(e.shape): the checkpoint does not fit the space")
            }
            if e.role == .numBatchesTracked {
                weights.batchesTracked[e.name] = Int64(t.ints().first ?? 0)
            } else {
                weights.set(e.name, t.floats())
            }
        }
        var training: TrainingState?
        if let stepText = file.metadata["step"] {
            guard let step = Int(stepText), step >= 0 else {
                throw .data("the step in the checkpoint's metadata is '\(stepText)', not a step count")
            }
            var momentum = [Float](repeating: 0, count: layout.parameterCount)
            for e in layout.entries where e.role.isParameter {
                guard let t = file[Checkpoint.momentumPrefix + e.name], t.count == e.count else {
                    throw .data("optimizer momentum of \(e.name) is missing or has the wrong shape")
                }
                momentum.replaceSubrange(e.offset..<(e.offset + e.count), with: t.floats())
            }
            // A resumed run must continue exactly: state that cannot be read is an
            // error, never silently a fresh start.
            var rng: [UInt64] = []
            if let text = file.metadata["random_state"] {
                let words = (try? JSONValue.parse(text))?.arrayValue?.map { $0.stringValue.flatMap(UInt64.init) }
                guard let words, words.count == 4, words.allSatisfy({ $0 != nil }) else {
                    throw .data("the random state in the checkpoint's metadata is unreadable")
                }
                rng = words.compactMap { $0 }
            }
            var info: JSONValue = .object([])
            if let text = file.metadata["training"] {
                guard let parsed = try? JSONValue.parse(text), parsed.objectValue != nil else {
                    throw .data("the training options in the checkpoint's metadata are unreadable")
                }
                info = parsed
            }
            training = TrainingState(momentum: momentum, step: step, randomState: rng, info: info)
        }
        self.init(space: space, weights: weights, training: training)
    }

    /// The K-shot settings of a checkpoint's metadata (nil: a plain supernet).
    static func kshotConfig(_ meta: [String: String]) throws(Failure) -> KShotConfig? {
        guard let text = meta["kshot"] else { return nil }
        guard let k = Int(text), k >= 1, k <= 64 else { throw .data("the metadata's kshot is '\(text)', not a copy count of 1 to 64") }
        if k == 1 { return nil }
        let t = meta["kshot_temperature"].map { Double($0) } ?? KShotConfig.defaultTemperature
        let h = meta["kshot_hidden"].map { Int($0) } ?? KShotConfig.defaultHidden
        guard let t, t > 0, t.isFinite else { throw .data("the metadata's kshot_temperature is '\(meta["kshot_temperature"] ?? "")', not a positive number") }
        guard let h, h >= 1, h <= 4096 else { throw .data("the metadata's kshot_hidden is '\(meta["kshot_hidden"] ?? "")', not a unit count of 1 to 4096") }
        return KShotConfig(copies: k, temperature: t, hidden: h)
    }

    /// K of the supernet: its weight copies per shared tensor (1: a plain supernet).
    public var kshotCopies: Int { weights.layout.kshot?.config.copies ?? 1 }

    /// Reads a checkpoint file; errors name the path (unreadable: 1, not a fitting
    /// checkpoint: 65).
    public init(contentsOf path: String, space: SearchSpace? = nil) throws(Failure) {
        let file = try TensorFile(contentsOf: path)
        do { try self.init(file: file, space: space) } catch { throw error.located(at: path) }
    }
}
