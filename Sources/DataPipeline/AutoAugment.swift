import NASCore

/// The official training augmentation's AutoAugment (`augment: auto_augment_tf` in the
/// AlphaNet/AttentiveNAS configs, `data/auto_augment_tf.py`, after timm): the TPU
/// EfficientNet ImageNet policy "v0", 25 sub-policies of two operations.
///
/// Per image: one sub-policy uniformly; each of its operations applies with its
/// probability, at a magnitude drawn from N(magnitude, 0.5) clipped to [0, 10], mapped
/// to the operation's argument by the official level functions (rotations, shears and
/// translations negated with probability 1/2), geometric ones with a resampling filter
/// drawn uniformly from nearest, bilinear and bicubic and the border filled with the
/// ImageNet mean (124, 116, 104). The operations are Pillow's (`PillowOps`).
///
/// The draws are made beforehand (`Draw`), so rendering stays deterministic; their
/// distribution is the official one, their random stream is ours.
public enum AutoAugment {
    /// An operation of the policy, named as the official table names it.
    public enum Operation: String, Sendable, CaseIterable {
        case autoContrast = "AutoContrast", equalize = "Equalize", invert = "Invert", rotate = "Rotate"
        case posterize = "Posterize", solarize = "Solarize", solarizeAdd = "SolarizeAdd", color = "Color"
        case shearX = "ShearX", shearY = "ShearY", translateYRel = "TranslateYRel"

        /// Whether the official op resamples (and so draws a filter and fills the border).
        public var isGeometric: Bool { [.rotate, .shearX, .shearY, .translateYRel].contains(self) }
        /// Whether the official level function negates its argument half the time.
        var isSigned: Bool { isGeometric }
    }

    /// One entry of the policy: operation, probability, magnitude (0-10).
    public struct Entry: Sendable, Equatable {
        public var operation: Operation
        public var probability: Double
        public var magnitude: Double
    }

    /// Policy v0 (auto_augment_policy_v0), in the official order.
    public static let policyV0: [[Entry]] = {
        let table: [[(Operation, Double, Double)]] = [
            [(.equalize, 0.8, 1), (.shearY, 0.8, 4)],
            [(.color, 0.4, 9), (.equalize, 0.6, 3)],
            [(.color, 0.4, 1), (.rotate, 0.6, 8)],
            [(.solarize, 0.8, 3), (.equalize, 0.4, 7)],
            [(.solarize, 0.4, 2), (.solarize, 0.6, 2)],
            [(.color, 0.2, 0), (.equalize, 0.8, 8)],
            [(.equalize, 0.4, 8), (.solarizeAdd, 0.8, 3)],
            [(.shearX, 0.2, 9), (.rotate, 0.6, 8)],
            [(.color, 0.6, 1), (.equalize, 1.0, 2)],
            [(.invert, 0.4, 9), (.rotate, 0.6, 0)],
            [(.equalize, 1.0, 9), (.shearY, 0.6, 3)],
            [(.color, 0.4, 7), (.equalize, 0.6, 0)],
            [(.posterize, 0.4, 6), (.autoContrast, 0.4, 7)],
            [(.solarize, 0.6, 8), (.color, 0.6, 9)],
            [(.solarize, 0.2, 4), (.rotate, 0.8, 9)],
            [(.rotate, 1.0, 7), (.translateYRel, 0.8, 9)],
            [(.shearX, 0.0, 0), (.solarize, 0.8, 4)],
            [(.shearY, 0.8, 0), (.color, 0.6, 4)],
            [(.color, 1.0, 0), (.rotate, 0.6, 2)],
            [(.equalize, 0.8, 4), (.equalize, 0.0, 8)],
            [(.equalize, 1.0, 4), (.autoContrast, 0.6, 2)],
            [(.shearY, 0.4, 7), (.solarizeAdd, 0.6, 7)],
            [(.posterize, 0.8, 2), (.solarize, 0.6, 10)],
            [(.solarize, 0.6, 8), (.equalize, 0.6, 1)],
            [(.color, 0.8, 6), (.rotate, 0.4, 5)],
        ]
        return table.map { $0.map { Entry(operation: $0.0, probability: $0.1, magnitude: $0.2) } }
    }()

    /// The official border fill: the ImageNet mean pixel rounded.
    public static let fill: (UInt8, UInt8, UInt8) = (124, 116, 104)
    /// The standard deviation of the magnitude's noise (the official `magnitude_std`).
    public static let magnitudeStd = 0.5
    /// The largest magnitude (the official `_MAX_LEVEL`).
    public static let maxLevel = 10.0

    /// One image's random draws: which sub-policy, and per operation a uniform (it
    /// applies when u <= probability, as the official `prob < random()` skip), a
    /// standard normal for the magnitude, the sign and the filter.
    public struct Draw: Sendable, Equatable {
        public var subPolicy: Int
        public var uniforms: [Double]
        public var normals: [Double]
        public var negate: [Bool]
        public var resample: [PillowOps.Resample]

        public init(subPolicy: Int, uniforms: [Double], normals: [Double], negate: [Bool], resample: [PillowOps.Resample]) {
            self.subPolicy = subPolicy
            self.uniforms = uniforms
            self.normals = normals
            self.negate = negate
            self.resample = resample
        }

        /// Draws for one image (a fixed count of values, whatever applies).
        public init(_ rng: inout SeededRandom) {
            subPolicy = Int(rng.next() % UInt64(AutoAugment.policyV0.count))
            uniforms = []
            normals = []
            negate = []
            resample = []
            for _ in 0..<2 {
                uniforms.append(rng.uniform())
                // Box-Muller on (0, 1] x [0, 1).
                let u1 = 1 - rng.uniform(), u2 = rng.uniform()
                normals.append((-2 * Glibc.log(u1)).squareRoot() * Glibc.cos(2 * Double.pi * u2))
                negate.append(rng.uniform() > 0.5)
                resample.append(PillowOps.Resample.allCases[Int(rng.next() % 3)])
            }
        }
    }

    /// An operation to apply with its argument (degrees, shear factor, fraction of the
    /// height, enhancement factor, bits or threshold).
    public struct Step: Sendable, Equatable {
        public var operation: Operation
        public var argument: Double
        public var resample: PillowOps.Resample
    }

    /// What `draw` applies, in order: the official level functions on the clipped magnitudes.
    public static func plan(_ draw: Draw) -> [Step] {
        var steps: [Step] = []
        for (k, entry) in policyV0[draw.subPolicy].enumerated() where draw.uniforms[k] <= entry.probability {
            let m = min(maxLevel, max(0, entry.magnitude + magnitudeStd * draw.normals[k]))
            var argument: Double
            switch entry.operation {
            case .autoContrast, .equalize, .invert: argument = 0
            case .rotate: argument = (m / maxLevel) * 30
            case .posterize: argument = Double(Int((m / maxLevel) * 4) + 4)
            case .solarize: argument = Double(Int((m / maxLevel) * 256))
            case .solarizeAdd: argument = Double(Int((m / maxLevel) * 110))
            case .color: argument = (m / maxLevel) * 1.8 + 0.1
            case .shearX, .shearY: argument = (m / maxLevel) * 0.3
            case .translateYRel: argument = (m / maxLevel) * 0.45
            }
            if entry.operation.isSigned && draw.negate[k] { argument = -argument }
            steps.append(Step(operation: entry.operation, argument: argument, resample: draw.resample[k]))
        }
        return steps
    }

    /// Applies one step as the official op does.
    public static func apply(_ step: Step, to image: RGBImage) -> RGBImage {
        let a = step.argument
        switch step.operation {
        case .autoContrast: return PillowOps.autocontrast(image)
        case .equalize: return PillowOps.equalize(image)
        case .invert: return PillowOps.invert(image)
        case .rotate: return PillowOps.rotate(image, degrees: a, resample: step.resample, fill: fill)
        case .posterize:
            let bits = Int(a)
            return bits >= 8 ? image : PillowOps.posterize(image, bits: max(1, bits))
        case .solarize: return PillowOps.solarize(image, threshold: Int(a))
        case .solarizeAdd: return PillowOps.solarizeAdd(image, add: Int(a))
        case .color: return PillowOps.color(image, factor: a)
        case .shearX: return PillowOps.affine(image, [1, a, 0, 0, 1, 0], resample: step.resample, fill: fill)
        case .shearY: return PillowOps.affine(image, [1, 0, 0, a, 1, 0], resample: step.resample, fill: fill)
        case .translateYRel:
            return PillowOps.affine(image, [1, 0, 0, 0, 1, a * Double(image.height)], resample: step.resample, fill: fill)
        }
    }

    /// The sub-policy of `draw` applied to `image`.
    public static func apply(_ draw: Draw, to image: RGBImage) -> RGBImage {
        plan(draw).reduce(image) { apply($1, to: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
