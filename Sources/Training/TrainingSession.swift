import Cluster
import System
import DataPipeline
import FileFormats
import NASCore
import Search
import Supernet

/// What one training step did, for the JSON-lines log.
public struct StepRecord: Sendable {
    /// Steps completed (1-based after this step).
    public var step: Int
    public var learningRate: Double
    public var losses: [Double]
    public var maxTop1: Double
    public var archs: [Arch]
    public var images: Int
    public var seconds: Double
    /// Seconds of the step spent in all-reduces (data parallelism), and waiting for the
    /// slowest rank before the gradient all-reduce.
    public var communicationSeconds = 0.0
    public var waitSeconds = 0.0
}

/// A resumable AlphaNet supernet training run: the model, the sandwich
/// trainer, the data loader, and the random state, all restored from a
/// checkpoint so a resumed run continues exactly where it stopped.
///
/// Determinism: one `SeededRandom` (saved in the checkpoint) draws the
/// subnets, dropout and drop-connect; the data order is seeded by the options'
/// seed. In exact epochs (`--data-order epochs`, files) the batch of a step is a
/// pure function of (seed, step), so a resumed run starts at its step without
/// reading anything before it; in the shuffle-buffer order the batches already
/// used are replayed (read, not rendered). Either way the next batch is the one
/// an uninterrupted run would see. A stream (`--data -`) is read through the
/// shuffle buffer and not replayed: a resumed run trains on what it brings next.
public final class TrainingSession {
    public let space: SearchSpace
    public let model: Supernet
    public let trainer: SandwichTrainer
    public let options: TrainingOptions
    public private(set) var step: Int
    var random: SeededRandom
    let loader: BatchLoader
    let attentive: AttentiveSampler?
    /// Fixed subnets per step (`--archs`), cycled; nil: sample.
    let fixedArchs: [Arch]?
    let inputResolution: Int
    /// The training data as errors name it.
    let dataName: String
    /// The exact-epoch order (nil: the shuffle buffer, as for a stream).
    public var epochOrder: EpochOrder? { loader.epochOrder }

    public init(space: SearchSpace, weights: SupernetWeights, options: TrainingOptions, resume: TrainingState?,
                data: ShardSource, fixedArchs: [Arch]? = nil, context: ComputeContext, communicator: Communicator? = nil) throws(Failure) {
        self.space = space
        self.options = options
        model = Supernet(weights: weights, space: space, context: context)
        trainer = SandwichTrainer(model: model, options: options.sandwich)
        let ranks = communicator?.size ?? 1
        precondition(options.ranks == ranks, "TrainingSession: options for \(options.ranks) ranks in a job of \(ranks)")
        if ranks > 1 {
            trainer.synchronizeBatchNorm = options.syncBatchNorm
            trainer.communicator = communicator
        }
        self.fixedArchs = fixedArchs
        dataName = data.name
        // A stand-alone subnet's images are rendered at its own resolution.
        inputResolution = options.resolution > 0 ? options.resolution
            : options.standaloneArch?.resolution ?? (space.resolutions.max() ?? 224)
        step = resume?.step ?? 0
        if let r = resume, r.randomState.count == 4 {
            random = SeededRandom(state: r.randomState)
        } else {
            random = SeededRandom.stream(seed: options.seed, index: 1)
        }
        if let r = resume {
            var st = trainer.optimizer.state
            guard r.momentum.count == st.momentumBuffer.count else { throw Failure.data("the checkpoint's momentum does not fit the space") }
            st.momentumBuffer = r.momentum
            st.step = r.step
            let flags = r.info["momentum_started"]?.stringValue.map { Array($0) } ?? []
            if flags.count == st.hasMomentumBuffer.count {
                st.hasMomentumBuffer = flags.map { $0 == "1" }
            } else {
                st.hasMomentumBuffer = Array(repeating: r.step > 0, count: st.hasMomentumBuffer.count)
            }
            trainer.optimizer.restore(st)
        }
        attentive = options.sampler == .uniform ? nil
            : AttentiveSampler(space: space, step: options.flopsBucket > 0 ? options.flopsBucket : nil, seed: options.seed)
        var isStream = false
        if case .stream = data { isStream = true }
        guard ranks == 1 || (options.dataOrder == .epochs && !isStream) else {
            throw Failure.usage("a job of \(ranks) ranks splits exact epochs of shard files; \(isStream ? "a stream" : "--data-order buffer") cannot be split")
        }
        do {
            if options.dataOrder == .epochs, !isStream {
                let catalog = try ShardCatalog(source: data)
                let window = Int(min(Int64(options.dataMemoryMiB) << 20 / Int64(catalog.bytesPerImage), Int64(Int32.max)))
                loader = try BatchLoader(epochsOf: catalog, batchSize: options.batchSize, resolution: inputResolution,
                                         augmentation: options.augmentation, seed: options.seed, windowImages: window, startStep: step,
                                         rank: communicator?.rank ?? 0, ranks: ranks)
            } else {
                loader = try BatchLoader(source: data, batchSize: options.batchSize, resolution: inputResolution,
                                         augmentation: options.augmentation, seed: options.seed,
                                         shuffleBuffer: options.shuffleBuffer, dropLast: true)
                // Replay the batches an earlier run already trained on (files
                // only: a stream brings new data, it cannot be replayed).
                if !isStream {
                    for _ in 0..<step {
                        guard try loader.nextPrepared() != nil else { break }
                    }
                }
            }
        } catch {
            throw error.located(at: data.name)
        }
    }

    /// Classes of the training data (after the first batch).
    public var classes: [String] { loader.classes }

    /// The subnets of the next step: the largest, `numArch - 2` random ones,
    /// the smallest (sandwich rule), or the next `numArch` of `fixedArchs`, or the
    /// stand-alone subnet alone (which the trainer then trains on the labels).
    func archs(for images: [Float], shape: Shape4, labels: [Int32]) -> [Arch] {
        if let only = options.standaloneArch { return [only] }
        let n = options.numArch
        if let fixed = fixedArchs, !fixed.isEmpty {
            return (0..<n).map { fixed[(step * n + $0) % fixed.count] }
        }
        var out = [space.maxArch]
        var sampler = ArchSampler(space: space, seed: random.next())
        for _ in 0..<max(0, n - 2) {
            if let attentive {
                let target = attentive.targetFlops(random: &random)
                var candidates = attentive.candidates(near: target, count: max(1, options.numTrials), random: &random)
                if options.resolution > 0 { for i in candidates.indices { candidates[i].resolution = options.resolution } }
                out.append(pick(candidates, images: images, shape: shape, labels: labels))
            } else {
                out.append(sampler.uniform())
            }
        }
        if n >= 2 { out.append(space.minArch) }
        return out
    }

    /// bestup: the candidate with the lowest minibatch loss; worstup: highest. In an MPI
    /// job the loss is that of the global batch (the mean of the ranks' losses), so every
    /// rank picks the same candidate, as one process with the global batch would (the
    /// official DDP code picks on each GPU's own loss, so GPUs may train different ones).
    func pick(_ candidates: [Arch], images: [Float], shape: Shape4, labels: [Int32]) -> Arch {
        var losses = candidates.map { c in
            let logits = images.withUnsafeBufferPointer {
                model.forward(arch: c, input: $0, shape: shape, normalization: .batchStatistics, trainable: false, random: &random)
            }
            return Double(logits.withUnsafeBufferPointer { z in
                labels.withUnsafeBufferPointer { y in
                    SmoothedCrossEntropy(labelSmoothing: options.labelSmoothing)(logits: z, labels: y, batch: shape.n, classes: space.nClasses)
                }
            })
        }
        if let c = trainer.communicator, c.size > 1 {
            c.sum(&losses)
            losses = losses.map { $0 / Double(c.size) }
        }
        return candidates[AttentiveSampler.select(losses: losses, worstUp: options.sampler == .attentiveWorstUp)]
    }

    /// Whether the next step's batch is ready (or the data has ended), waiting at most
    /// `seconds`: the run polls this so a signal is honoured while the data stalls.
    public func dataReady(within seconds: Double) -> Bool {
        loader.waitUntilReady(seconds: seconds)
    }

    /// Trains one step; nil when the data is exhausted (a stream ended). The record's
    /// seconds count from the call (a wait for data before it is the caller's to add).
    public func runStep() throws(Failure) -> StepRecord? {
        let start = monotonicSeconds()
        let batch: Batch
        do {
            guard let b = try loader.next(resolution: inputResolution) else { return nil }
            batch = b
        } catch {
            throw error.located(at: dataName)
        }
        if let bad = batch.labels.first(where: { Int($0) >= space.nClasses }) {
            throw .data("label \(bad) is outside the space's \(space.nClasses) classes", at: dataName)
        }
        let shape = Shape4(n: batch.count, h: batch.resolution, w: batch.resolution, c: 3)
        var archs = self.archs(for: batch.images, shape: shape, labels: batch.labels)
        if options.resolution > 0 {
            for i in archs.indices { archs[i].resolution = options.resolution }
        }
        let lr = options.learningRate(step: step)
        model.trainsSimplexNet = model.layout.kshot != nil && step >= options.kshotWarmup
        let result = batch.images.withUnsafeBufferPointer {
            trainer.step(archs: archs, images: $0, shape: shape, labels: batch.labels, learningRate: lr, random: &random)
        }
        step += 1
        for l in result.losses where !l.isFinite {
            throw Failure.data("the loss became \(l) at step \(step); lower the learning rate (--lr) or check the data")
        }
        return StepRecord(step: step, learningRate: lr, losses: result.losses, maxTop1: result.firstTop1, archs: archs,
                          images: batch.count, seconds: monotonicSeconds() - start, communicationSeconds: result.communicationSeconds, waitSeconds: result.waitSeconds)
    }

    /// The state to save: weights, momentum, step, random state, options.
    public func checkpoint() -> Checkpoint {
        let st = trainer.optimizer.state
        let info: JSONValue = .object([
            ("options", options.json),
            ("momentum_started", .string(String(st.hasMomentumBuffer.map { $0 ? "1" : "0" }))),
            ("classes", .string(loader.classes.joined(separator: ","))),
        ])
        let training = TrainingState(momentum: st.momentumBuffer, step: step, randomState: random.stateWords, info: info)
        return Checkpoint(space: space, weights: model.weights, training: training)
    }
}

#if canImport(Glibc)
import Glibc
#endif
