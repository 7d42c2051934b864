import NASCore

/// How a sample becomes a `resolution` x `resolution` network input.
public enum Augmentation: Sendable, Equatable {
    /// torchvision `RandomResizedCrop(res, scale=(0.08, 1), ratio=(3/4, 4/3))`
    /// (bicubic, antialiased as PIL) + `RandomHorizontalFlip()`: the official
    /// AttentiveNAS/AlphaNet training transform.
    case train
    /// `.train`, then the official AutoAugment (`AutoAugment`, policy v0) on the 8-bit
    /// crop: the official `augment: auto_augment_tf` transform.
    case trainAutoAugment
    /// `Resize(int(res / 0.875))` (shorter side) + `CenterCrop(res)`: the
    /// official evaluation transform (256 -> 224 at res 224). Pack the
    /// validation set with `--size 256` and evaluate at 224: the crop is then
    /// exactly the official one, without resampling. Small stored images are
    /// treated alike: a 32 px image at res 32 is upscaled to int(32/0.875) = 36
    /// and its centre 32 kept; use `.none` to keep the whole image.
    case eval
    /// The whole stored image resized to res x res (nothing at stored size).
    case none
    /// Zero-pad `pad` pixels on each side, random crop of the stored size,
    /// random horizontal flip, then resize to res if it differs (the demo recipe, pad 4).
    case padCrop(pad: Int)
}

/// Per-sample random draws, made when a batch is assembled so that
/// rendering at any resolution is deterministic.
struct SampleDraw: Sendable {
    var box: PixelBox
    var flip: Bool
    var padX = 0
    var padY = 0
    /// The AutoAugment draws (`.trainAutoAugment` only).
    var autoAugment: AutoAugment.Draw?
}

enum AugmentationDraws {
    /// torchvision's RandomResizedCrop.get_params: up to 10 attempts of
    ///   area = S*H*W with S ~ U(0.08, 1), log r ~ U(log 3/4, log 4/3),
    ///   w = round(sqrt(area*r)), h = round(sqrt(area/r)),
    ///   accepted when 0 < w <= W and 0 < h <= H, at i ~ U{0..H-h}, j ~ U{0..W-w};
    /// then the fallback: the centre crop with the ratio clamped to [3/4, 4/3].
    static func randomResizedCrop(width W: Int, height H: Int, rng: inout SeededRandom,
                                  scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) -> PixelBox {
        let area = Double(W * H)
        let logLo = Glibc.log(ratio.lowerBound), logHi = Glibc.log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + rng.uniform() * (scale.upperBound - scale.lowerBound))
            let r = Glibc.exp(logLo + rng.uniform() * (logHi - logLo))
            let w = Int((target * r).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / r).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && h > 0 && w <= W && h <= H {
                let i = Int(rng.next() % UInt64(H - h + 1))
                let j = Int(rng.next() % UInt64(W - w + 1))
                return PixelBox(x0: Double(j), y0: Double(i), x1: Double(j + w), y1: Double(i + h))
            }
        }
        let inRatio = Double(W) / Double(H)
        var w = W, h = H
        if inRatio < ratio.lowerBound {
            h = Int((Double(W) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            w = Int((Double(H) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        let i = (H - h) / 2, j = (W - w) / 2
        return PixelBox(x0: Double(j), y0: Double(i), x1: Double(j + w), y1: Double(i + h))
    }

    /// The evaluation box: shorter side resized to int(res / 0.875), centre crop res.
    static func evalBox(width: Int, height: Int, resolution: Int) -> PixelBox {
        let resize = Int(Double(resolution) / 0.875 + 1e-9)
        return Resampler.centreCropBox(width: width, height: height, resize: resize, crop: resolution)
    }
}

#if canImport(Glibc)
import Glibc
#endif
