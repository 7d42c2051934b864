/// In-place distillation with soft targets, the official `KLLossSoft`
/// (AlphaNet `loss_ops.py`; AttentiveNAS's distillation loss before AlphaNet).
///
/// For student logits `s`, teacher logits `t` (both `[N, C]`, row-major, the
/// teacher treated as a constant), temperature `T`:
///
///     p    = softmax(t / T),  log q = log_softmax(s / T)
///     kd_n = -sum_c p_c * log q_c
///     L    = (1/N) sum_n kd_n                                     (no labels)
///     L    = (1/N) sum_n [ a * T^2 * kd_n + (1 - a) * (-log q_{y_n}) ]   (with labels y, weight a)
///
/// Despite its name the official value is the **cross-entropy** H(p, q), not
/// KL(p || q) = H(p, q) - H(p): the teacher entropy is not subtracted (the
/// gradient is the same). Without labels there is **no T^2 factor**; with
/// labels the hard-label term also uses the tempered `log q`. Reduction:
/// mean over the batch. Gradient (autograd's, through `s / T`):
///
///     g_c      = -(a T^2 p_c + (1 - a) [c == y]) / N     (or -p_c / N without labels)
///     dL/ds_nc = (g_c - q_c * sum_k g_k) / T
///
/// Accuracy: relative error (max |diff| / max |ref| per tensor) below 1e-5 in
/// Double and 1e-4 in Float against `losses.json` (tests). Log-space, so
/// finite for any finite logits.
public struct SoftTargetCrossEntropy: Sendable, Equatable {
    /// `T`; the official training uses 1.
    public var temperature: Double
    /// `a`, the weight of the soft term when labels are given (official default 0.9).
    public var softWeight: Double

    public init(temperature: Double = 1, softWeight: Double = 0.9) {
        precondition(temperature > 0, "temperature must be positive")
        self.temperature = temperature
        self.softWeight = softWeight
    }

    /// The mean loss. `labels` (optional, `[N]`) adds the hard-label term as
    /// above. When `gradient` is given, **adds** `dL/dstudent` into it (`[N, C]`).
    public func callAsFunction<T: LossScalar>(
        student: UnsafeBufferPointer<T>, teacher: UnsafeBufferPointer<T>,
        labels: UnsafeBufferPointer<Int32>? = nil,
        batch: Int, classes: Int, gradient: UnsafeMutableBufferPointer<T>? = nil
    ) -> T {
        precondition(batch > 0 && classes > 0, "need a non-empty batch and at least one class")
        precondition(student.count == batch * classes && teacher.count == batch * classes, "logits must be [N, C]")
        precondition(labels.map { $0.count == batch } ?? true, "labels must be [N]")
        precondition(gradient.map { $0.count == batch * classes } ?? true, "gradient must be [N, C]")
        let temp = T(temperature)
        // Python: alpha * temperature * temperature * kd_loss, evaluated left to right.
        let softScale: T = labels == nil ? 1 : T(softWeight * temperature * temperature)
        let hardScale: T = labels == nil ? 0 : T(1 - softWeight)
        let invBatch = 1 / T(batch)
        var total = 0.0
        for n in 0 ..< batch {
            let range = n * classes ..< (n + 1) * classes
            let s = UnsafeBufferPointer(rebasing: student[range])
            let t = UnsafeBufferPointer(rebasing: teacher[range])
            let q = SoftmaxRow(s, temperature: temp)
            let p = SoftmaxRow(t, temperature: temp)
            let label: Int
            if let labels {
                label = Int(labels[n])
                precondition(label >= 0 && label < classes, "label \(label) out of range 0..<\(classes)")
            } else {
                label = -1
            }
            var kdSum = 0.0
            var weightSum = 0.0
            for c in 0 ..< classes {
                let pc = p.probability(t[c])
                kdSum -= Double(pc * q.logProbability(s[c]))
                weightSum += Double(softScale * pc + (c == label ? hardScale : 0))
            }
            let kd = T(kdSum)
            let gSum = T(weightSum)
            total += Double(label >= 0 ? softScale * kd - hardScale * q.logProbability(s[label]) : kd)
            if let gradient {
                for c in 0 ..< classes {
                    let g = softScale * p.probability(t[c]) + (c == label ? hardScale : 0)
                    let qc = T.exponential(q.logProbability(s[c]))
                    gradient[range.lowerBound + c] += (qc * gSum - g) * invBatch / temp
                }
            }
        }
        return T(total / Double(batch))
    }

    /// Array convenience: the mean loss and its gradient `[N, C]` (no labels).
    public func lossAndGradient<T: LossScalar>(student: [T], teacher: [T], batch: Int, classes: Int) -> (loss: T, gradient: [T]) {
        var gradient = [T](repeating: 0, count: student.count)
        let loss = student.withUnsafeBufferPointer { s in
            teacher.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    self(student: s, teacher: t, batch: batch, classes: classes, gradient: g)
                }
            }
        }
        return (loss, gradient)
    }
}
