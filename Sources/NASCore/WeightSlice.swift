/// A subnet's view of a supernet convolution weight stored in PyTorch OIHW layout
/// with maximal shape `[outMax, inMax, kMax, kMax]` (`inMax` is 1 for depthwise).
///
/// The subnet uses the first `cout` output channels, the first `cin` input channels
/// and the centre `k x k` window of the `kMax x kMax` kernel, i.e. PyTorch's
/// `weight[:cout, :cin, s:s+k, s:s+k]` with `s = (kMax - k) / 2`
/// (`sub_filter_start_end` of the official code). Element `(o, i, kh, kw)` of the
/// slice lives at `((o * inMax + i) * kMax + s + kh) * kMax + s + kw` of the full
/// buffer. Gradients use the same layout and indexing, so a subnet's backward pass
/// accumulates straight into the full-size supernet gradient buffer.
public struct ConvWeightSlice: Hashable, Sendable {
    public var outMax: Int
    public var inMax: Int
    public var kMax: Int
    public var cout: Int
    public var cin: Int
    public var k: Int

    /// - Precondition: `cout <= outMax`, `cin <= inMax`, `k <= kMax`, and `kMax - k`
    ///   even (centre crop).
    public init(outMax: Int, inMax: Int, kMax: Int = 1, cout: Int, cin: Int, k: Int = 1) {
        precondition(cout >= 1 && cout <= outMax, "ConvWeightSlice: cout \(cout) outside 1...\(outMax)")
        precondition(cin >= 1 && cin <= inMax, "ConvWeightSlice: cin \(cin) outside 1...\(inMax)")
        precondition(k >= 1 && k <= kMax && (kMax - k) % 2 == 0, "ConvWeightSlice: kernel \(k) not a centre crop of \(kMax)")
        self.outMax = outMax
        self.inMax = inMax
        self.kMax = kMax
        self.cout = cout
        self.cin = cin
        self.k = k
    }

    /// The whole weight, unsliced.
    public init(full outMax: Int, _ inMax: Int, kernel kMax: Int = 1) {
        self.init(outMax: outMax, inMax: inMax, kMax: kMax, cout: outMax, cin: inMax, k: kMax)
    }

    /// Number of floats in the full stored weight, `outMax * inMax * kMax * kMax`.
    @inlinable public var fullCount: Int { outMax * inMax * kMax * kMax }
    /// Offset of the centre window, `(kMax - k) / 2`.
    @inlinable public var start: Int { (kMax - k) / 2 }

    /// Index in the full buffer of slice element `(o, i, kh, kw)`.
    @inlinable public func index(_ o: Int, _ i: Int, _ kh: Int, _ kw: Int) -> Int {
        ((o * inMax + i) * kMax + start + kh) * kMax + start + kw
    }

    /// Number of floats of the slice, `cout * cin * k * k`.
    @inlinable public var count: Int { cout * cin * k * k }

    /// Whether this slice of the same full weight contains `other`.
    public func covers(_ other: ConvWeightSlice) -> Bool {
        cout >= other.cout && cin >= other.cin && k >= other.k
    }

    /// The smallest slice of the same full weight that covers both.
    public func covering(_ other: ConvWeightSlice) -> ConvWeightSlice {
        precondition(outMax == other.outMax && inMax == other.inMax && kMax == other.kMax, "ConvWeightSlice: slices of different weights")
        return ConvWeightSlice(outMax: outMax, inMax: inMax, kMax: kMax, cout: max(cout, other.cout), cin: max(cin, other.cin), k: max(k, other.k))
    }

    /// Calls `body(start, length)` for the contiguous runs of the full buffer that make up
    /// the slice, in increasing order: one run when the slice is a prefix of whole rows,
    /// a run per output row when whole kernels are used, else a run per kernel row.
    public func forEachRun(_ body: (_ start: Int, _ length: Int) -> Void) {
        let kk = kMax * kMax
        if k == kMax {
            if cin == inMax {
                body(0, cout * inMax * kk)
            } else {
                for o in 0..<cout { body(o * inMax * kk, cin * kk) }
            }
            return
        }
        for o in 0..<cout {
            for i in 0..<cin {
                for kh in 0..<k { body(index(o, i, kh, 0), k) }
            }
        }
    }
}
