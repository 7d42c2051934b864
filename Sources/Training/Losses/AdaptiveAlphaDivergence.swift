/// AlphaNet's adaptive alpha-divergence for in-place distillation (official
/// `AdaptiveLossSoft(alpha_min=-1, alpha_max=1, iw_clip=5)` with its helper
/// `f_divergence`, AlphaNet `loss_ops.py`).
///
/// Per sample, with student `q = softmax(s)` (the distribution trained) and
/// teacher `p = softmax(t)` (a constant), importance ratio `r = p / q`:
///
///     alpha ~ 0 (|alpha| < 1e-3):     w = min(r, clip)          D = sum q * (-log w)           rho = log w - 1
///     alpha ~ 1 (|alpha - 1| < 1e-3): (no clip)                 D = sum q * r log r = KL(p||q) rho = r
///     otherwise:                      w = min(r^alpha, clip)    D = sum q * (w - 1) / (alpha (alpha - 1))
///                                                               rho = w / alpha + 1 / (alpha (alpha - 1))
///
/// Both `D(alpha_min)` and `D(alpha_max)` are computed; the sample uses the
/// `alpha_min` side when `D(alpha_min) > D(alpha_max)` (strictly; ties take
/// `alpha_max`). The official code then returns, and backpropagates, a
/// **surrogate** (`grad_loss`), not the divergence:
///
///     S_n = -sum_c q_c * rho_c * log q_c        with q and rho detached
///     L   = (1/N) sum_n S_n                     (reduction 'mean')
///     dL/ds_nj = -(u_j - q_j * sum_c u_c) / N,  u_c = q_c * rho_c
///
/// i.e. autograd differentiates only through `log_softmax(s)`. That gradient
/// is the (clipped) alpha-divergence gradient; the reported loss value is `L`,
/// which for the alpha = 1 side equals the soft-target cross-entropy
/// `-sum p log q` and for alpha = -1 is usually negative.
///
/// **Numerics.** The official code forms `p_prob / q_prob` from probabilities,
/// which gives NaN once a probability underflows (teacher or student logit
/// gaps of ~100 in Float: `0 * inf`, `0 * log 0`). Here every ratio is taken in
/// log space (`log r = log p - log q` from max-subtracted log-softmax; `r^alpha
/// = exp(alpha log r)`, overflow to +inf is clipped; `q * r = p` on the alpha = 1
/// side), so the result is finite for all finite logits and equals the
/// official value wherever that is finite. Where the official value is NaN
/// (`D(alpha_max)` NaN makes it pick `alpha_max`), this code compares the
/// limiting values instead.
///
/// Accuracy against the official PyTorch values (`losses.json`): relative
/// error (max |diff| / max |ref| per tensor) below 1e-5 in Double, 1e-4 in Float.
public struct AdaptiveAlphaDivergence: Sendable, Equatable {
    public var alphaMin: Double
    public var alphaMax: Double
    /// `iw_clip`: the upper clamp of the importance weights `r^alpha`.
    public var importanceWeightClip: Double

    /// Defaults are the official AlphaNet configuration (`alpha_min: -1.0`,
    /// `alpha_max: 1.0`, `iw_clip: 5.0`).
    public init(alphaMin: Double = -1, alphaMax: Double = 1, importanceWeightClip: Double = 5) {
        precondition(importanceWeightClip > 0, "the importance-weight clip must be positive")
        self.alphaMin = alphaMin
        self.alphaMax = alphaMax
        self.importanceWeightClip = importanceWeightClip
    }

    /// The per-sample quantities of the official forward.
    public struct SampleTerms<T: LossScalar>: Sendable, Equatable {
        /// The surrogate `S_n` of the chosen side (official reduction 'none').
        public var loss: T
        /// `D(alpha_min)` (`loss_left` in the official code).
        public var divergenceAlphaMin: T
        /// `D(alpha_max)` (`loss_right`).
        public var divergenceAlphaMax: T
        /// Whether the `alpha_min` side was chosen (`D(alpha_min) > D(alpha_max)`).
        public var usesAlphaMin: Bool
    }

    /// The mean surrogate loss over the batch (the official forward's value).
    /// When `gradient` is given, **adds** `dL/dstudent` (including the 1/N of
    /// the mean) into it. All buffers `[N, C]` row-major; `teacher` is constant.
    public func callAsFunction<T: LossScalar>(
        student: UnsafeBufferPointer<T>, teacher: UnsafeBufferPointer<T>,
        batch: Int, classes: Int, gradient: UnsafeMutableBufferPointer<T>? = nil
    ) -> T {
        precondition(batch > 0 && classes > 0, "need a non-empty batch and at least one class")
        precondition(student.count == batch * classes && teacher.count == batch * classes, "logits must be [N, C]")
        precondition(gradient.map { $0.count == batch * classes } ?? true, "gradient must be [N, C]")
        var total = 0.0
        let invBatch = 1 / T(batch)
        for n in 0 ..< batch {
            let range = n * classes ..< (n + 1) * classes
            let g = gradient.map { UnsafeMutableBufferPointer(rebasing: $0[range]) }
            let terms = sample(
                student: UnsafeBufferPointer(rebasing: student[range]),
                teacher: UnsafeBufferPointer(rebasing: teacher[range]),
                gradientScale: invBatch, gradient: g
            )
            total += Double(terms.loss)
        }
        return T(total / Double(batch))
    }

    /// The per-sample terms of one row (`student`, `teacher`: `[C]`). When
    /// `gradient` is given, adds `gradientScale * dS/dstudent` into it.
    public func sample<T: LossScalar>(
        student: UnsafeBufferPointer<T>, teacher: UnsafeBufferPointer<T>,
        gradientScale: T = 1, gradient: UnsafeMutableBufferPointer<T>? = nil
    ) -> SampleTerms<T> {
        let classes = student.count
        precondition(classes > 0 && teacher.count == classes, "student and teacher rows must have the same length")
        precondition(gradient.map { $0.count == classes } ?? true, "gradient row must match")
        let q = SoftmaxRow(student)
        let p = SoftmaxRow(teacher)
        let left = DivergenceSide<T>(alpha: alphaMin, clip: importanceWeightClip)
        let right = DivergenceSide<T>(alpha: alphaMax, clip: importanceWeightClip)
        var leftSums = DivergenceSide<T>.Sums()
        var rightSums = DivergenceSide<T>.Sums()
        for c in 0 ..< classes {
            let element = DivergenceElement(student: student[c], teacher: teacher[c], q: q, p: p)
            leftSums.add(left.terms(element), logQ: element.logQ)
            rightSums.add(right.terms(element), logQ: element.logQ)
        }
        let divergenceLeft = T(leftSums.divergence)
        let divergenceRight = T(rightSums.divergence)
        let usesAlphaMin = divergenceLeft > divergenceRight
        let (side, sums) = usesAlphaMin ? (left, leftSums) : (right, rightSums)
        let weightSum = T(sums.weight)
        if let gradient {
            for c in 0 ..< classes {
                let element = DivergenceElement(student: student[c], teacher: teacher[c], q: q, p: p)
                let u = side.terms(element).weight
                let qc = T.exponential(element.logQ)
                gradient[c] -= (u - qc * weightSum) * gradientScale
            }
        }
        return SampleTerms(
            loss: T(sums.surrogate),
            divergenceAlphaMin: divergenceLeft,
            divergenceAlphaMax: divergenceRight,
            usesAlphaMin: usesAlphaMin
        )
    }

    /// Array convenience: the mean loss and its gradient `[N, C]`.
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

    /// Array convenience: the per-sample terms of every row.
    public func sampleTerms<T: LossScalar>(student: [T], teacher: [T], batch: Int, classes: Int) -> [SampleTerms<T>] {
        precondition(batch > 0 && student.count == batch * classes && teacher.count == batch * classes, "logits must be [N, C]")
        return student.withUnsafeBufferPointer { s in
            teacher.withUnsafeBufferPointer { t in
                (0 ..< batch).map { n in
                    let range = n * classes ..< (n + 1) * classes
                    return sample(student: UnsafeBufferPointer(rebasing: s[range]), teacher: UnsafeBufferPointer(rebasing: t[range]))
                }
            }
        }
    }
}

/// One class of one sample, in log space.
private struct DivergenceElement<T: LossScalar> {
    /// log q_c (student), log p_c (teacher), log r_c = log p_c - log q_c.
    let logQ: T
    let logP: T
    let logRatio: T
    /// q_c = exp(s_c - max) / sum, PyTorch's softmax.
    let q: T
    /// p_c, likewise.
    let p: T

    init(student: T, teacher: T, q: SoftmaxRow<T>, p: SoftmaxRow<T>) {
        logQ = q.logProbability(student)
        logP = p.logProbability(teacher)
        logRatio = logP - logQ
        self.q = q.probability(student)
        self.p = p.probability(teacher)
    }
}

/// One side (one alpha) of the official `f_divergence`.
private struct DivergenceSide<T: LossScalar> {
    enum Branch {
        /// |alpha| < 1e-3: f = -log w, rho = log w - 1, w = clamp(r, 0, clip).
        case logarithmic(logClip: T)
        /// |alpha - 1| < 1e-3: f = r log r, rho = r, no clip.
        case forwardKL
        /// f = w / alpha / (alpha - 1), f_base = 1 / alpha / (alpha - 1),
        /// rho = w / alpha + f_base, w = clamp(r^alpha, 0, clip).
        case power(alpha: T, alphaMinusOne: T, base: T, clip: T)
    }

    let branch: Branch

    init(alpha: Double, clip: Double) {
        if abs(alpha) < 1e-3 {
            branch = .logarithmic(logClip: T.logarithm(T(clip)))
        } else if abs(alpha - 1) < 1e-3 {
            branch = .forwardKL
        } else {
            // f_base is a Python float (1.0 / alpha / (alpha - 1.0)) rounded to T.
            branch = .power(alpha: T(alpha), alphaMinusOne: T(alpha - 1), base: T(1 / alpha / (alpha - 1)), clip: T(clip))
        }
    }

    /// `q * (f - f_base)` (the divergence summand) and `q * rho` (the surrogate weight).
    @inline(__always)
    func terms(_ e: DivergenceElement<T>) -> (divergence: T, weight: T) {
        switch branch {
        case .logarithmic(let logClip):
            // log(min(r, clip)) = min(log r, log clip); log is monotonic.
            let logW = Swift.min(e.logRatio, logClip)
            return (e.q * -logW, e.q * (logW - 1))
        case .forwardKL:
            // q * r = p, so q * (r log r) = p log r and q * rho = p: finite even
            // where q or p underflows (the official 0 * inf and 0 * log 0 give NaN).
            return (e.p * e.logRatio, e.p)
        case .power(let alpha, let alphaMinusOne, let base, let clip):
            // r^alpha may overflow to +inf, which the clip turns into `clip`.
            let w = Swift.min(T.exponential(alpha * e.logRatio), clip)
            let f = w / alpha / alphaMinusOne
            return (e.q * (f - base), e.q * (w / alpha + base))
        }
    }

    /// The running sums of one side over the classes of a sample (in Double,
    /// see `SoftmaxRow`).
    struct Sums {
        var divergence = 0.0
        /// sum_c q_c rho_c
        var weight = 0.0
        /// -sum_c q_c rho_c log q_c
        var surrogate = 0.0

        @inline(__always)
        mutating func add(_ t: (divergence: T, weight: T), logQ: T) {
            divergence += Double(t.divergence)
            weight += Double(t.weight)
            surrogate -= Double(t.weight * logQ)
        }
    }
}
