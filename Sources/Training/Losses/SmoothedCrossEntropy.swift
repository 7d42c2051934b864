/// Cross-entropy with label smoothing, the loss of the max subnet (official
/// `CrossEntropyLossSmooth` in AlphaNet/AttentiveNAS `loss_ops.py`, used with
/// `label_smoothing: 0.1`).
///
/// For logits `z` `[N, C]` (row-major) and labels `y` `[N]`:
///
///     t_c  = (1 - eps) * [c == y] + eps / C          (smoothed one-hot target)
///     L    = (1/N) sum_n  -sum_c t_c * log_softmax(z_n)_c
///     dL/dz_nj = (q_nj * sum_c t_c - t_j) / N         (q = softmax(z_n); sum_c t_c = 1 up to rounding)
///
/// The gradient is written exactly as autograd forms it (log_softmax backward
/// `g - exp(log_softmax) * sum(g)` with `g = -t / N`). log_softmax is taken with
/// max subtraction, so any finite logits give finite values.
///
/// Accuracy: matches the official PyTorch values in `losses.json` to a
/// relative error (max |diff| / max |ref| per tensor) below 1e-5 in Double and
/// 1e-4 in Float (tests).
public struct SmoothedCrossEntropy: Sendable, Equatable {
    /// `eps`, the probability mass spread evenly over all C classes.
    public var labelSmoothing: Double

    public init(labelSmoothing: Double = 0.1) {
        precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "label smoothing must be in [0, 1]")
        self.labelSmoothing = labelSmoothing
    }

    /// The mean loss over the batch. When `gradient` is given, **adds**
    /// `dL/dlogits` (including the 1/N of the mean) into it; shape `[N, C]`.
    public func callAsFunction<T: LossScalar>(
        logits: UnsafeBufferPointer<T>, labels: UnsafeBufferPointer<Int32>,
        batch: Int, classes: Int, gradient: UnsafeMutableBufferPointer<T>? = nil
    ) -> T {
        precondition(batch > 0 && classes > 0, "need a non-empty batch and at least one class")
        precondition(logits.count == batch * classes && labels.count == batch, "logits [N, C] and labels [N]")
        precondition(gradient.map { $0.count == batch * classes } ?? true, "gradient must be [N, C]")
        // As in PyTorch with a float tensor: the Python doubles (1 - eps) and eps / C
        // are rounded to T, then added in T.
        let offTarget = T(labelSmoothing / Double(classes))
        let onTarget = T(1 - labelSmoothing) + offTarget
        let invBatch = 1 / T(batch)
        var total = 0.0
        for n in 0 ..< batch {
            let label = Int(labels[n])
            precondition(label >= 0 && label < classes, "label \(label) out of range 0..<\(classes)")
            let row = UnsafeBufferPointer(rebasing: logits[n * classes ..< (n + 1) * classes])
            let softmax = SoftmaxRow(row)
            var rowLoss = 0.0
            var sumOfTargets = 0.0
            for c in 0 ..< classes {
                let t = c == label ? onTarget : offTarget
                rowLoss -= Double(t * softmax.logProbability(row[c]))
                sumOfTargets += Double(t)
            }
            total += rowLoss
            let targetSum = T(sumOfTargets)
            if let gradient {
                let base = n * classes
                for c in 0 ..< classes {
                    let t = c == label ? onTarget : offTarget
                    let q = T.exponential(softmax.logProbability(row[c]))
                    gradient[base + c] += (q * targetSum - t) * invBatch
                }
            }
        }
        return T(total / Double(batch))
    }

    /// Array convenience: the mean loss and its gradient `[N, C]`.
    public func lossAndGradient<T: LossScalar>(logits: [T], labels: [Int32], batch: Int, classes: Int) -> (loss: T, gradient: [T]) {
        var gradient = [T](repeating: 0, count: logits.count)
        let loss = logits.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                gradient.withUnsafeMutableBufferPointer { g in
                    self(logits: z, labels: y, batch: batch, classes: classes, gradient: g)
                }
            }
        }
        return (loss, gradient)
    }
}
