/// SGD with (Nesterov) momentum and per-parameter weight decay, with PyTorch's
/// `torch.optim.SGD` semantics (dampening 0), as the official training uses it
/// (`momentum: 0.9`, `nesterov: True`, weight decay per `WeightDecayGroup`).
///
/// For each segment that has a gradient this step, element-wise:
///
///     d   = grad + wd * param
///     buf = d                        on the segment's first step with a gradient
///     buf = momentum * buf + d       afterwards
///     u   = d + momentum * buf       (Nesterov)   or   u = buf   (classic)
///     param -= lr * u
///
/// (With `momentum == 0` no buffer is kept and `u = d`.) A segment without a
/// gradient in a step (PyTorch: `.grad is None`, e.g. a shortcut conv no
/// sampled subnet used) is skipped entirely: no weight decay, no buffer
/// update, and its buffer starts on its first step with a gradient.
///
/// Arithmetic is Float with fused multiply-adds where PyTorch's vectorised CPU
/// kernel for `add(x, alpha=a)` uses `fmadd` (`grad + wd*param`,
/// `d + momentum*buf`, `param - lr*u`) and a separate multiply for
/// `buf.mul_(momentum)`; hyper-parameters are rounded to Float as PyTorch does
/// with Python scalars. Results agree with PyTorch to a few ulps (its scalar
/// tail loop does not fuse).
///
/// The optimizer is one loop over the flat buffers; its whole state
/// (`SGDMomentum.State`) is plain arrays and a counter, saved in checkpoints.
public struct SGDMomentum: Sendable {
    public var momentum: Double
    public var nesterov: Bool
    public let segments: [ParameterSegment]
    /// Total number of elements the buffers must have (end of the last segment).
    public let parameterCount: Int
    public var state: State

    /// Everything needed to resume exactly.
    public struct State: Sendable, Equatable {
        /// Momentum buffers in the parameter layout (`[parameterCount]`).
        public var momentumBuffer: [Float]
        /// Per segment: whether its buffer exists (PyTorch: `'momentum_buffer' in state[p]`).
        public var hasMomentumBuffer: [Bool]
        /// Number of `step` calls so far.
        public var step: Int

        public init(momentumBuffer: [Float], hasMomentumBuffer: [Bool], step: Int) {
            self.momentumBuffer = momentumBuffer
            self.hasMomentumBuffer = hasMomentumBuffer
            self.step = step
        }
    }

    public init(segments: [ParameterSegment], momentum: Double = 0.9, nesterov: Bool = true) {
        precondition(momentum >= 0, "momentum must be non-negative")
        precondition(!nesterov || momentum > 0, "Nesterov momentum requires a momentum > 0 (as in PyTorch)")
        let end = segments.map { $0.offset + $0.count }.max() ?? 0
        self.momentum = momentum
        self.nesterov = nesterov
        self.segments = segments
        self.parameterCount = end
        self.state = State(
            momentumBuffer: [Float](repeating: 0, count: end),
            hasMomentumBuffer: [Bool](repeating: false, count: segments.count),
            step: 0
        )
    }

    /// Restores a saved state; traps if it does not fit these segments.
    public mutating func restore(_ saved: State) {
        precondition(saved.momentumBuffer.count == parameterCount && saved.hasMomentumBuffer.count == segments.count && saved.step >= 0,
                     "optimizer state does not match the parameter layout")
        state = saved
    }

    /// One update of `parameters` from `gradients` (both `[parameterCount]`,
    /// the segment layout) with learning rate `learningRate`.
    /// `hasGradient[i]` says whether segment `i` received a gradient this step
    /// (nil: all did). Allocates nothing.
    public mutating func step(
        parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>,
        learningRate: Double, hasGradient: [Bool]? = nil
    ) {
        precondition(parameters.count >= parameterCount && gradients.count >= parameterCount, "buffers shorter than the parameter layout")
        precondition(hasGradient.map { $0.count == segments.count } ?? true, "hasGradient needs one flag per segment")
        let lr = Float(learningRate)
        let m = Float(momentum)
        let nesterov = self.nesterov
        state.momentumBuffer.withUnsafeMutableBufferPointer { buffer in
            for (s, segment) in segments.enumerated() {
                if let hasGradient, !hasGradient[s] { continue }
                let wd = Float(segment.weightDecay)
                let first = !state.hasMomentumBuffer[s]
                for i in segment.range {
                    // d = grad + wd * param (PyTorch skips this when wd == 0; adding 0 * param is the same value)
                    let d = wd == 0 ? gradients[i] : gradients[i].addingProduct(wd, parameters[i])
                    let update: Float
                    if m == 0 {
                        update = d
                    } else {
                        let b = first ? d : m * buffer[i] + d
                        buffer[i] = b
                        update = nesterov ? d.addingProduct(m, b) : b
                    }
                    parameters[i] = parameters[i].addingProduct(-lr, update)
                }
                if m != 0 { state.hasMomentumBuffer[s] = true }
            }
        }
        state.step += 1
    }

    /// Array convenience for `step`.
    public mutating func step(parameters: inout [Float], gradients: [Float], learningRate: Double, hasGradient: [Bool]? = nil) {
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                step(parameters: p, gradients: g, learningRate: learningRate, hasGradient: hasGradient)
            }
        }
    }
}
