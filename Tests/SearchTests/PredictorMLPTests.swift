import FileFormats
import NASCore
import Testing
@testable import Search

/// Small, fast mlp options for tests: the smooth synthetic target needs little training.
func smallMLP(_ activation: MLPActivation = .tanh, seed: UInt64 = 1, folds: Int = 0) -> PredictorOptions {
    var o = PredictorOptions()
    o.kind = .mlp
    o.folds = folds
    o.seed = seed
    o.mlp.hidden = [16, 16]
    o.mlp.activation = activation
    o.mlp.steps = 400
    o.mlp.batchSize = 64
    o.mlp.weightDecay = 1e-3
    return o
}

@Suite struct PredictorMLPTests {
    let names = (0..<6).map { FeatureName(key: "f\($0)") }

    @Test(arguments: [MLPActivation.tanh, .relu])
    func learnsASmoothNonlinearTarget(activation: MLPActivation) throws {
        let (x, y) = syntheticData(seed: 6, rows: 400)
        let (xt, yt) = syntheticData(seed: 7, rows: 300)
        let p = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP(activation))
        let pred = p.predict(xt)
        let tau = RankMetrics.kendallTau(pred, yt)
        let mean = yt.reduce(0, +) / Double(yt.count)
        var residual = 0.0, total = 0.0
        for i in yt.indices { residual += (pred[i] - yt[i]) * (pred[i] - yt[i]); total += (yt[i] - mean) * (yt[i] - mean) }
        let r2 = 1 - residual / total
        #expect(tau > 0.9 && r2 > 0.95, "\(activation): held-out tau \(tau), R^2 \(r2)")
    }

    @Test func sameSeedSameWeightsOtherSeedOtherWeights() throws {
        let (x, y) = syntheticData(seed: 5, rows: 120)
        let a = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP(folds: 3))
        let b = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP(folds: 3))
        #expect(a == b)
        let c = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP(seed: 2, folds: 3))
        #expect(a.model != c.model)
    }

    @Test(arguments: [MLPActivation.tanh, .relu])
    func fileRoundTripGivesBitIdenticalPredictions(activation: MLPActivation) throws {
        let (x, y) = syntheticData(seed: 9, rows: 80)
        let (xt, _) = syntheticData(seed: 13, rows: 2100, levels: 6)  // more than one chunk, unseen values
        let p = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP(activation))
        let back = try Predictor(json: try JSONValue.parse(p.fileText))
        #expect(back == p)
        #expect(back.predict(xt) == p.predict(xt))
        let batch = p.predict(xt)
        xt.values.withUnsafeBufferPointer { all in
            for r in 0..<xt.rows {
                #expect(batch[r] == p.model.predict(UnsafeBufferPointer(rebasing: all[(r * 6)..<((r + 1) * 6)])))
            }
        }
    }

    /// Training's gradients against central finite differences of the loss.
    @Test(arguments: [MLPActivation.tanh, .relu])
    func gradientsMatchFiniteDifferences(activation: MLPActivation) {
        var random = SeededRandom(seed: 4)
        let d = 3, rows = 5
        let layers = [(3, 4), (4, 2), (2, 1)].map { (i, o) in
            MLPLayer(inputs: i, outputs: o, weights: (0..<(i * o)).map { _ in random.uniform() * 2 - 1 }, biases: (0..<o).map { _ in random.uniform() - 0.5 })
        }
        var trainer = MLPTrainer(layers: layers, rows: rows, batch: rows, activation: activation)
        for i in 0..<(rows * d) { trainer.acts[0][i] = random.uniform() * 2 - 1 }
        for b in 0..<rows { trainer.target[b] = random.uniform() }
        func loss(_ t: MLPTrainer) -> Double {
            var u = t
            u.forwardBackward()
            var s = 0.0
            for b in 0..<rows { s += (u.acts[u.layers.count][b] - u.target[b]) * (u.acts[u.layers.count][b] - u.target[b]) }
            return s / Double(2 * rows)
        }
        trainer.forwardBackward()
        let h = 1e-6
        for k in layers.indices {
            for i in layers[k].weights.indices {
                var plus = trainer, minus = trainer
                plus.layers[k].weights[i] += h
                minus.layers[k].weights[i] -= h
                let numeric = (loss(plus) - loss(minus)) / (2 * h)
                #expect(abs(numeric - trainer.gw[k][i]) <= 1e-6 * max(1, abs(numeric)), "layer \(k) weight \(i)")
            }
            for j in layers[k].biases.indices {
                var plus = trainer, minus = trainer
                plus.layers[k].biases[j] += h
                minus.layers[k].biases[j] -= h
                let numeric = (loss(plus) - loss(minus)) / (2 * h)
                #expect(abs(numeric - trainer.gb[k][j]) <= 1e-6 * max(1, abs(numeric)), "layer \(k) bias \(j)")
            }
        }
    }

    @Test func badFilesAndOptionsSayWhatIsWrong() throws {
        let (x, y) = syntheticData(seed: 10, rows: 30)
        let p = try Predictor.fit(x, y, features: names, target: "t", options: smallMLP())
        func message(_ json: JSONValue) -> String {
            do { _ = try Predictor(json: json); return "" } catch { return error.message }
        }
        #expect(message(p.json.with("layers", .array([]))).contains("layers"))
        #expect(message(p.json.with("feature_mean", .array([.double(0)]))).contains("feature_mean"))
        var o = smallMLP()
        o.mlp.hidden = [0]
        #expect(o.problem?.contains("hidden") == true)
    }
}
