/// The shape of an NHWC float32 activation tensor: `n` samples of `h` rows of `w`
/// pixels of `c` contiguous channels. Element `(i, y, x, ch)` lives at
/// `((i * h + y) * w + x) * c + ch`; channels are the fastest-varying index, which is
/// what lets per-channel loops (depthwise convolution, BatchNorm, activations) run
/// over contiguous SIMD lanes and lets a 1x1 convolution be one GEMM of
/// `[n*h*w, c]` rows.
public struct Shape4: Hashable, Sendable, CustomStringConvertible {
    public var n: Int
    public var h: Int
    public var w: Int
    public var c: Int

    public init(n: Int, h: Int, w: Int, c: Int) {
        precondition(n >= 0 && h >= 0 && w >= 0 && c >= 0, "Shape4: negative extent")
        self.n = n
        self.h = h
        self.w = w
        self.c = c
    }

    /// Number of elements, `n * h * w * c`.
    @inlinable public var count: Int { n * h * w * c }
    /// Number of pixels (GEMM rows of a 1x1 convolution), `n * h * w`.
    @inlinable public var pixels: Int { n * h * w }
    /// Elements per sample, `h * w * c`.
    @inlinable public var sampleCount: Int { h * w * c }

    /// The same spatial extent with another channel count.
    @inlinable public func with(c newC: Int) -> Shape4 { Shape4(n: n, h: h, w: w, c: newC) }

    public var description: String { "[\(n),\(h),\(w),\(c)]" }
}

/// Output geometry of a square-kernel convolution or pooling window with PyTorch
/// semantics: `out = floor((in + 2 * pad - k) / stride) + 1`.
public enum ConvGeometry {
    /// 'same' padding used by the official model for odd kernels: `pad = k / 2`.
    @inlinable public static func samePadding(kernel k: Int) -> Int { k / 2 }

    /// `floor((size + 2 * pad - k) / stride) + 1` (PyTorch `Conv2d` / `avg_pool2d`).
    @inlinable public static func outputSize(_ size: Int, kernel k: Int, stride s: Int, pad p: Int) -> Int {
        precondition(s >= 1 && k >= 1 && size + 2 * p >= k, "ConvGeometry: window larger than padded input")
        return (size + 2 * p - k) / s + 1
    }

    /// Output shape of a 'same'-padded k x k convolution with `cout` outputs.
    @inlinable public static func sameOutput(_ x: Shape4, kernel k: Int, stride s: Int, cout: Int) -> Shape4 {
        let p = samePadding(kernel: k)
        return Shape4(n: x.n, h: outputSize(x.h, kernel: k, stride: s, pad: p),
                      w: outputSize(x.w, kernel: k, stride: s, pad: p), c: cout)
    }
}
