import FileFormats
import NASCore
import Supernet
import TestSupport

/// Weights, inputs and labels of GENERATOR.md in the reference data (`Paths.reference`).
enum Reference {
    static func weights(_ space: SearchSpace) throws -> SupernetWeights {
        let layout = SupernetLayout(space: space)
        var w = SupernetWeights(layout: layout)
        for e in layout.entries where e.role != .numBatchesTracked {
            w.set(e.name, try ReferenceGenerator.tensor(name: e.name, shape: e.shape))
        }
        return w
    }

    /// The generator's NCHW input `[b, 3, r, r]`, transposed to NHWC.
    static func inputNHWC(batch: Int, resolution r: Int) -> [Float] {
        let nchw = ReferenceGenerator.input(batch: batch, resolution: r)
        var out = [Float](repeating: 0, count: nchw.count)
        for n in 0..<batch {
            for c in 0..<3 {
                for y in 0..<r {
                    for x in 0..<r {
                        out[((n * r + y) * r + x) * 3 + c] = nchw[((n * 3 + c) * r + y) * r + x]
                    }
                }
            }
        }
        return out
    }

    static func std(_ v: [Double]) -> Double {
        let m = v.reduce(0, +) / Double(v.count)
        return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot()
    }
}
