import Foundation
import NASCore

/// Adam training of `MLPRegressor` layers on standardised data. Every buffer
/// is sized once for the batch; a step allocates nothing.
struct MLPTrainer {
    var layers: [MLPLayer]
    let batch: Int
    let activation: MLPActivation
    /// acts[0] is the batch input [batch][d]; acts[k + 1] the output of layer k [batch][outputs_k], after the activation for hidden layers.
    var acts: [[Double]]
    /// Gradient with respect to the output of layer k, before its activation: [batch][outputs_k].
    var deltas: [[Double]]
    /// Gradients, Adam first and second moments, in the layout of each layer's weights / biases.
    var gw: [[Double]], gb: [[Double]]
    var mw: [[Double]], vw: [[Double]], mb: [[Double]], vb: [[Double]]
    var target: [Double]

    init(layers: [MLPLayer], rows: Int, batch: Int, activation: MLPActivation) {
        precondition(batch >= 1 && batch <= rows, "batch within 1...rows")
        self.layers = layers
        self.batch = batch
        self.activation = activation
        acts = [[Double](repeating: 0, count: batch * layers[0].inputs)] + layers.map { [Double](repeating: 0, count: batch * $0.outputs) }
        deltas = layers.map { [Double](repeating: 0, count: batch * $0.outputs) }
        gw = layers.map { [Double](repeating: 0, count: $0.weights.count) }
        gb = layers.map { [Double](repeating: 0, count: $0.outputs) }
        mw = gw; vw = gw; mb = gb; vb = gb
        target = [Double](repeating: 0, count: batch)
    }

    /// Runs `options.steps` Adam steps on rows of `z` ([rows][d], standardised) and targets `t`.
    mutating func train(_ z: [Double], _ t: [Double], options: MLPOptions, random: inout SeededRandom) {
        let n = t.count, d = layers[0].inputs
        var order = Array(0..<n)
        var cursor = n  // forces a shuffle before the first mini-batch
        for step in 0..<options.steps {
            // Pick the batch: the whole data in order, or the next slice of a reshuffled pass.
            if batch == n {
                cursor = 0
            } else if cursor + batch > n {
                for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
                cursor = 0
            }
            for b in 0..<batch {
                let r = order[cursor + b]
                for c in 0..<d { acts[0][b * d + c] = z[r * d + c] }
                target[b] = t[r]
            }
            cursor += batch
            forwardBackward()
            // Cosine decay from the learning rate to 0 over the steps.
            let progress = Double(step) / Double(options.steps)
            let lr = options.learningRate * 0.5 * (1 + cos(Double.pi * progress))
            adam(step: step + 1, lr: lr, weightDecay: options.weightDecay)
        }
    }

    /// Forward pass over the batch, then gradients of mean((o - t)^2) / 2 into gw, gb (overwritten).
    mutating func forwardBackward() {
        let count = layers.count
        for k in 0..<count {
            let layer = layers[k]
            let input = acts[k]
            layer.weights.withUnsafeBufferPointer { w in
                input.withUnsafeBufferPointer { a in
                    acts[k + 1].withUnsafeMutableBufferPointer { out in
                        MLPKernels.forward(a, rows: batch, w, layer.biases, inputs: layer.inputs, outputs: layer.outputs, into: out)
                        if k < count - 1 { MLPKernels.activate(out, count: batch * layer.outputs, activation) }
                    }
                }
            }
        }
        // Output layer: delta = (o - t) / batch.
        let scale = 1 / Double(batch)
        for b in 0..<batch { deltas[count - 1][b] = (acts[count][b] - target[b]) * scale }
        for k in stride(from: count - 1, through: 0, by: -1) {
            let inputs = layers[k].inputs, outputs = layers[k].outputs
            acts[k].withUnsafeBufferPointer { a in
                deltas[k].withUnsafeBufferPointer { g in
                    // gw[i][j] = sum_b a[b][i] g[b][j]; gb[j] = sum_b g[b][j].
                    gw[k].withUnsafeMutableBufferPointer { dw in
                        for i in 0..<dw.count { dw[i] = 0 }
                        for b in 0..<batch {
                            for i in 0..<inputs {
                                let ai = a[b * inputs + i]
                                if ai == 0 { continue }  // relu zeros: adding 0 * g changes nothing
                                let wi = i * outputs, gi = b * outputs
                                for j in 0..<outputs { dw[wi + j] += ai * g[gi + j] }
                            }
                        }
                    }
                    gb[k].withUnsafeMutableBufferPointer { db in
                        for j in 0..<outputs { db[j] = 0 }
                        for b in 0..<batch { for j in 0..<outputs { db[j] += g[b * outputs + j] } }
                    }
                    guard k > 0 else { return }
                    // delta[k-1][b][i] = f'(a[b][i]) * sum_j w[i][j] g[b][j], f' from the activation's output.
                    let act = activation
                    layers[k].weights.withUnsafeBufferPointer { w in
                        deltas[k - 1].withUnsafeMutableBufferPointer { prev in
                            for b in 0..<batch {
                                for i in 0..<inputs {
                                    let ai = a[b * inputs + i]
                                    let slope: Double
                                    switch act {
                                    case .relu: slope = ai > 0 ? 1 : 0
                                    case .tanh: slope = 1 - ai * ai
                                    }
                                    if slope == 0 { prev[b * inputs + i] = 0; continue }
                                    var s = 0.0
                                    let wi = i * outputs, gi = b * outputs
                                    for j in 0..<outputs { s += w[wi + j] * g[gi + j] }
                                    prev[b * inputs + i] = slope * s
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One Adam step (bias-corrected) with decoupled weight decay on the weights.
    mutating func adam(step: Int, lr: Double, weightDecay: Double) {
        let beta1 = 0.9, beta2 = 0.999, eps = 1e-8
        let c1 = 1 - pow(beta1, Double(step)), c2 = 1 - pow(beta2, Double(step))
        func update(_ p: UnsafeMutableBufferPointer<Double>, _ g: UnsafeBufferPointer<Double>,
                    _ m: UnsafeMutableBufferPointer<Double>, _ v: UnsafeMutableBufferPointer<Double>, decay: Double) {
            for i in 0..<p.count {
                m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
                p[i] -= lr * ((m[i] / c1) / ((v[i] / c2).squareRoot() + eps) + decay * p[i])
            }
        }
        for k in 0..<layers.count {
            layers[k].weights.withUnsafeMutableBufferPointer { p in
                gw[k].withUnsafeBufferPointer { g in
                    mw[k].withUnsafeMutableBufferPointer { m in
                        vw[k].withUnsafeMutableBufferPointer { v in update(p, g, m, v, decay: weightDecay) }
                    }
                }
            }
            layers[k].biases.withUnsafeMutableBufferPointer { p in
                gb[k].withUnsafeBufferPointer { g in
                    mb[k].withUnsafeMutableBufferPointer { m in
                        vb[k].withUnsafeMutableBufferPointer { v in update(p, g, m, v, decay: 0) }
                    }
                }
            }
        }
    }
}
