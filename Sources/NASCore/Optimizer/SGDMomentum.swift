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

    /// `step` with each gradient value first clipped to `[-clip, clip]` (nil: no clipping;
    /// `GradientClipping.clipByValue`'s rule, a NaN stays NaN), in one pass over
    /// parameters, gradients and momentum, the elements of the segments with a gradient
    /// spread evenly over `context`'s workers. Every element is computed exactly as by
    /// `clipByValue` then `step` (same operations, same fused multiply-adds), so the
    /// result does not depend on the split; clipped gradient values are written back, so
    /// `gradients` end as `clipByValue` leaves them. Returns the number of values clipped.
    @discardableResult
    public mutating func step(
        _ context: ComputeContext, parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeMutableBufferPointer<Float>,
        learningRate: Double, hasGradient: [Bool]? = nil, clip: Float? = nil
    ) -> Int {
        precondition(parameters.count >= parameterCount && gradients.count >= parameterCount, "buffers shorter than the parameter layout")
        precondition(hasGradient.map { $0.count == segments.count } ?? true, "hasGradient needs one flag per segment")
        precondition(clip.map { $0 >= 0 } ?? true, "the clip value must be non-negative")
        let active = segments.indices.filter { hasGradient?[$0] ?? true }
        // Prefix sums of the active segments' sizes: worker w takes the elements
        // [w * total / W, (w + 1) * total / W) of their concatenation.
        var starts = [0]
        for s in active { starts.append(starts[starts.count - 1] + segments[s].count) }
        let total = starts[starts.count - 1]
        let workers = max(1, min(context.workers, total / 65536))
        var counts = [Int](repeating: 0, count: workers)
        let kernel = SGDKernel(learningRate: Float(learningRate), momentum: Float(momentum), nesterov: nesterov, clip: clip)
        state.momentumBuffer.withUnsafeMutableBufferPointer { buffer in
            counts.withUnsafeMutableBufferPointer { clipped in
                let p = parameters.baseAddress!, g = gradients.baseAddress!, b = buffer.baseAddress!
                let first = state.hasMomentumBuffer
                context.parallel(workers) { w in
                    let lo = w * total / workers, hi = (w + 1) * total / workers
                    var j = max(0, (starts.firstIndex { $0 > lo } ?? 1) - 1)
                    var n = 0
                    while j < active.count && starts[j] < hi {
                        let seg = segments[active[j]]
                        let a = max(lo, starts[j]) - starts[j], e = min(hi, starts[j + 1]) - starts[j]
                        if a < e {
                            n += kernel.run(p + seg.offset + a, g + seg.offset + a, b + seg.offset + a, count: e - a,
                                            weightDecay: Float(seg.weightDecay), first: !first[active[j]])
                        }
                        j += 1
                    }
                    clipped[w] = n
                }
            }
        }
        if momentum != 0 { for s in active { state.hasMomentumBuffer[s] = true } }
        state.step += 1
        return counts.reduce(0, +)
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

/// The element-wise update of `SGDMomentum.step(_:parameters:...)`: clip, weight decay,
/// momentum, Nesterov, the parameter update; eight lanes at a time, then a scalar tail,
/// with the same operations (and fused multiply-adds) as the scalar loop of `step`.
struct SGDKernel {
    var learningRate: Float
    var momentum: Float
    var nesterov: Bool
    var clip: Float?

    /// Updates `count` elements; returns how many gradient values were clipped.
    func run(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
             count: Int, weightDecay wd: Float, first: Bool) -> Int {
        let lr = learningRate, m = momentum, limit = clip ?? .infinity
        var clipped = 0
        var i = 0
        let hi8 = SIMD8<Float>(repeating: limit), lo8 = -hi8
        while i + 8 <= count {
            var gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let over = gv .> hi8, under = gv .< lo8
            if any(over .| under) {
                for l in 0..<8 where over[l] || under[l] { clipped += 1 }
                gv.replace(with: hi8, where: over)
                gv.replace(with: lo8, where: under)
                UnsafeMutableRawPointer(g + i).storeBytes(of: gv, as: SIMD8<Float>.self)
            }
            let pv = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            let d = wd == 0 ? gv : gv.addingProduct(wd, pv)
            var u = d
            if m != 0 {
                let bv = first ? d : m * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self) + d
                UnsafeMutableRawPointer(b + i).storeBytes(of: bv, as: SIMD8<Float>.self)
                u = nesterov ? d.addingProduct(m, bv) : bv
            }
            UnsafeMutableRawPointer(p + i).storeBytes(of: pv.addingProduct(-lr, u), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            var gi = g[i]
            if gi > limit { gi = limit; g[i] = gi; clipped += 1 } else if gi < -limit { gi = -limit; g[i] = gi; clipped += 1 }
            let d = wd == 0 ? gi : gi.addingProduct(wd, p[i])
            var u = d
            if m != 0 {
                let bi = first ? d : m * b[i] + d
                b[i] = bi
                u = nesterov ? d.addingProduct(m, bi) : bi
            }
            p[i] = p[i].addingProduct(-lr, u)
            i += 1
        }
        return clipped
    }
}
