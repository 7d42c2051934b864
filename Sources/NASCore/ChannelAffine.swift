import CVectorKernels

/// A per-channel affine map and activation, `y[r, ch] = act(x[r, ch] · scale[ch] + bias[ch])`
/// (one fused multiply-add, then the activation), applied by a convolution to its own
/// output while that output is still in cache: an evaluation-mode BatchNorm (and the
/// activation after it) fused into the layer before it, instead of a separate pass over
/// memory. The arithmetic is `BatchNorm.forwardInference`'s, so applied to the same
/// convolution output it gives bit-identical results (a 1x1 convolution computed in tiles
/// rounds its GEMM differently: `PointwiseConv.forward`).
public struct ChannelAffine {
    public var scale: [Float]
    public var bias: [Float]
    public var activation: Activation

    public init(scale: [Float], bias: [Float], activation: Activation = .identity) {
        precondition(scale.count == bias.count, "ChannelAffine: \(scale.count) scales, \(bias.count) biases")
        self.scale = scale
        self.bias = bias
        self.activation = activation
    }

    /// Evaluation-mode BatchNorm over the first `channels` channels:
    /// `scale = gamma / sqrt(runningVar + eps)`, `bias = beta - runningMean · scale`.
    public init(batchNormGamma gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
                runningMean: UnsafeBufferPointer<Float>, runningVar: UnsafeBufferPointer<Float>,
                channels c: Int, activation: Activation = .identity) {
        requireCount(gamma, c, "gamma"); requireCount(beta, c, "beta")
        requireCount(runningMean, c, "runningMean"); requireCount(runningVar, c, "runningVar")
        var scale = [Float](repeating: 0, count: c), bias = [Float](repeating: 0, count: c)
        for ch in 0..<c {
            let s = gamma[ch] / (runningVar[ch] + BatchNorm.eps).squareRoot()
            scale[ch] = s
            bias[ch] = beta[ch] - runningMean[ch] * s
        }
        self.init(scale: scale, bias: bias, activation: activation)
    }

    public var channels: Int { scale.count }

    /// Applies the map in place to `rows` rows of `channels` floats at `y`, on the calling
    /// thread (kernels call it from inside their own parallel chunks). With `.avx512`,
    /// swish (compute-bound: an exponential and a division per element) runs the 512-bit C
    /// loop, which is bit-identical to the Swift one; the other activations are
    /// memory-bound and stay here.
    public func apply(_ y: UnsafeMutablePointer<Float>, rows: Int, isa: VectorISA) {
        scale.withUnsafeBufferPointer { s in
            bias.withUnsafeBufferPointer { b in
                if isa == .avx512 && activation == .swish {
                    vk_affine_swish_rows_avx512(y, y, rows, Int32(s.count), s.base, b.base)
                } else {
                    activation.dispatch(Rows(x: UnsafePointer(y), y: y, rows: 0..<rows, c: s.count, scale: s.base, bias: b.base))
                }
            }
        }
    }

    /// Rows `rows` of `[*, c]` from `x` to `y` (which may alias `x`), specialised for the
    /// activation.
    struct Rows: ActivationLoop {
        let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>, c: Int
        let scale: UnsafePointer<Float>, bias: UnsafePointer<Float>
        @inline(__always) func run<K: ActivationKernel>(_: K.Type) {
            let c = c
            for r in rows {
                let xr = x + r * c, yr = y + r * c
                var ch = 0
                while ch + 8 <= c {
                    store8(K.apply8(load8(bias + ch).addingProduct(load8(xr + ch), load8(scale + ch))), yr + ch)
                    ch += 8
                }
                if ch < c {
                    let t = c - ch
                    storePartial(K.apply8(loadPartial(bias + ch, t).addingProduct(loadPartial(xr + ch, t), loadPartial(scale + ch, t))), yr + ch, t)
                }
            }
        }
    }
}
