import Dispatch
import NASCore

extension Supernet {
    /// Backward pass of the last `forward(trainable: true)`: given the
    /// gradient of the loss w.r.t. the logits (`[n, n_classes]`), adds the
    /// gradients of every parameter the subnet used into `gradients` (in a K-shot
    /// supernet, into the copies and the simplex-net: `usedParameterOffsets`).
    ///
    /// Activation gradients live in the gradient arena, at the offsets the tape
    /// planned by liveness (`Tape.planGradients`). A buffer read by two layers (a
    /// block input feeds the main branch and the shortcut) receives the first
    /// contribution directly and the second inside the GEMM (pointwise conv,
    /// beta 1) or through `scratch` plus an add (other kernels overwrite `dx`).
    public func backward(logitsGradient: UnsafeBufferPointer<Float>) {
        precondition(tape.trainable, "backward needs a forward pass with trainable: true")
        precondition(logitsGradient.count >= tape.logits.count)
        // Whether each buffer's gradient holds a contribution yet, by `Buf.id`.
        var ready = [Bool](repeating: false, count: tape.gradOffset.count)
        func mark(_ b: Buf) -> Bool {
            defer { ready[b.id] = true }
            return ready[b.id]
        }
        let lg = gradBuffer(tape.logits)
        for i in 0..<tape.logits.count { lg[i] = logitsGradient[i] }
        _ = mark(tape.logits)

        /// Runs `body` with the buffer that receives d(`x`), adding into an
        /// existing gradient where `x` already received one.
        func into(_ x: Buf, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
            if mark(x) {
                let s = UnsafeMutableBufferPointer(rebasing: arena.scratch[0..<x.count])
                body(s)
                Elementwise.addInPlace(context, UnsafeBufferPointer(s), into: gradBuffer(x), count: x.count)
            } else {
                body(gradBuffer(x))
            }
        }

        let ctx = context
        for op in tape.ops.reversed() {
            let t0 = profile == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            defer { if let profile { profile.record(op.kind, forward: false, nanoseconds: DispatchTime.now().uptimeNanoseconds - t0) } }
            switch op {
            case .resize:
                break // the input needs no gradient
            case let .conv(op):
                // The stem reads the image, which needs no gradient.
                Conv2D.backward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride,
                                dy: rog(op.y), dx: nil, dWeight: gradient(op.w))
            case let .pointwise(op):
                // A second reader of x adds its part in the GEMM (beta 1), no scratch pass.
                let accumulate = mark(op.x)
                PointwiseConv.backward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, dy: rog(op.y),
                                       dx: gradBuffer(op.x), accumulateDx: accumulate, dWeight: gradient(op.w), dBias: op.bias.map { gradient($0) })
            case let .depthwise(op):
                into(op.x) { dx in
                    DepthwiseConv.backward(ctx, x: ro(op.x), shape: op.xs, weight: weight(op.w), slice: op.slice, stride: op.stride,
                                           dy: rog(op.y), dx: dx, dWeight: gradient(op.w))
                }
            case let .batchNorm(op):
                let c = op.xs.c
                // With a fused activation the gradient at its input is written over dy
                // (y's gradient, whose last use this is).
                let fused = op.activation == .identity ? nil : BatchNorm.FusedActivation(op.activation, beta: UnsafeBufferPointer(rebasing: weight(op.beta)[0..<c]))
                into(op.x) { dx in
                    BatchNorm.backward(ctx, x: ro(op.x), shape: op.xs, gamma: UnsafeBufferPointer(rebasing: weight(op.gamma)[0..<c]),
                                       mean: ro(op.saveMean), invStd: ro(op.saveInvStd), dy: rog(op.y), dx: dx,
                                       dGamma: UnsafeMutableBufferPointer(rebasing: gradient(op.gamma)[0..<c]),
                                       dBeta: UnsafeMutableBufferPointer(rebasing: gradient(op.beta)[0..<c]), fused: fused,
                                       sync: tape.normalization == .batchStatistics ? batchStatisticsSync : nil)
                }
            case let .activation(a, x, y):
                into(x) { dx in a.backward(ctx, x: ro(x), dy: rog(y), dx: dx, count: x.count) }
            case let .squeezeExcite(op):
                let pr = SqueezeExcite.Parameters(reduceWeight: weight(op.reduceW), reduceBias: weight(op.reduceB), expandWeight: weight(op.expandW), expandBias: weight(op.expandB), cMax: op.cMax, midMax: op.midMax)
                let gr = SqueezeExcite.Gradients(reduceWeight: gradient(op.reduceW), reduceBias: gradient(op.reduceB), expandWeight: gradient(op.expandW), expandBias: gradient(op.expandB))
                into(op.x) { dx in
                    SqueezeExcite.backward(ctx, x: ro(op.x), shape: op.xs, mid: op.mid, parameters: pr, saved: ro(op.saved), dy: rog(op.y), dx: dx, gradients: gr)
                }
            case let .dropConnect(op):
                into(op.x) { dx in DropConnect.backward(ctx, dy: rog(op.y), shape: op.xs, factors: ro(op.factors), dx: dx) }
            case let .avgPool(xs, x, y):
                into(x) { dx in ShortcutAvgPool.backward(ctx, dy: rog(y), shape: xs, dx: dx) }
            case let .add(a, b, y):
                for t in [a, b] {
                    into(t) { dx in
                        if let d = dx.baseAddress, let src = rog(y).baseAddress { d.update(from: src, count: t.count) }
                    }
                }
            case let .globalPool(xs, x, y):
                into(x) { dx in GlobalAvgPool.backward(ctx, dy: rog(y), shape: xs, dx: dx) }
            case let .linear(op):
                into(op.x) { dx in
                    Linear.backward(ctx, x: ro(op.x), n: op.n, inFeatures: op.inFeatures, weight: weight(op.w), outFeatures: op.outFeatures, inMax: op.inMax,
                                    dy: rog(op.y), dx: dx, dWeight: gradient(op.w), dBias: op.bias.map { gradient($0) })
                }
            case let .dropout(op):
                into(op.x) { dx in Dropout.backward(dy: rog(op.y), mask: ro(op.mask), dx: dx, count: op.x.count) }
            }
        }
        // K-shot: the mixed tensors' gradients belong to their copies and the codes.
        distributeKShotGradients()
    }

    @inline(__always) func gradBuffer(_ b: Buf) -> UnsafeMutableBufferPointer<Float> {
        let o = tape.gradOffset[b.id]
        assert(o >= 0, "buffer without a gradient region")
        return UnsafeMutableBufferPointer(rebasing: arena.grads[o..<(o + b.count)])
    }

    @inline(__always) func rog(_ b: Buf) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(gradBuffer(b)) }

    @inline(__always) func gradient(_ r: TensorRef) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: gradients[r.offset..<(r.offset + r.count)])
    }
}
