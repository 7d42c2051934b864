import FileFormats
import NASCore
import Supernet
import Testing
@testable import Search

/// `n` rows of `columns` discrete features (values 0..<levels) and a smooth
/// nonlinear target with interactions, like accuracy over arch choices.
func syntheticData(seed: UInt64, rows n: Int, columns: Int = 6, levels: Int = 4) -> (FeatureMatrix, [Double]) {
    var random = SeededRandom(seed: seed)
    var x: [Double] = [], y: [Double] = []
    for _ in 0..<n {
        var row: [Double] = []
        for _ in 0..<columns { row.append(Double(random.next() % UInt64(levels))) }
        let t = 2 * row[0] + row[1] * row[2] - 0.5 * row[3] * row[3] + (columns > 4 ? 0.3 * row[4] : 0)
        x += row
        y.append(t)
    }
    return (FeatureMatrix(rows: n, columns: columns, values: x), y)
}

func smallOptions(_ kind: PredictorModelKind, folds: Int = 3, seed: UInt64 = 1) -> PredictorOptions {
    var o = PredictorOptions()
    o.kind = kind
    o.folds = folds
    o.seed = seed
    o.gbdt.trees = 60
    o.gbdt.learningRate = 0.1
    o.gbdt.maxDepth = 3
    o.rf.trees = 15
    return o
}

@Suite struct PredictorModelTests {
    @Test func binsSplitWhereRawThresholdsDo() {
        let x = FeatureMatrix([[3], [1], [2], [1], [5], [3]])
        let b = BinnedFeatures(x)
        #expect(b.thresholds[0] == [1.5, 2.5, 4])
        #expect(b.bins == [2, 0, 1, 0, 3, 2])
        for r in 0..<x.rows {
            for (k, t) in b.thresholds[0].enumerated() {
                #expect((Int(b.bins[r]) <= k) == (x[r, 0] <= t))
            }
        }
        // A wide column is cut at quantiles into at most maxBins bins.
        let wide = BinnedFeatures(FeatureMatrix((0..<1000).map { [Double($0)] }), maxBins: 16)
        #expect(wide.binCount(0) <= 16 && wide.binCount(0) >= 8)
        #expect(Set(wide.bins).count == wide.binCount(0))
    }

    @Test func treeFitsAStepExactlyAndBinnedRoutingMatchesRaw() {
        let (x, _) = syntheticData(seed: 3, rows: 200)
        let y = (0..<x.rows).map { x[$0, 0] > 1.5 ? (x[$0, 2] > 0.5 ? 3.0 : 2.0) : -1.0 }
        let data = BinnedFeatures(x)
        let (tree, bins) = TreeBuilder.fit(data: data, target: y, rows: (0..<x.rows).map { Int32($0) },
                                           limits: TreeLimits(maxDepth: nil, minSamplesLeaf: 1))
        #expect(tree.check(columns: x.columns) == nil)
        #expect(tree.nodeCount == 5)
        x.values.withUnsafeBufferPointer { all in
            for r in 0..<x.rows {
                let raw = tree.predict(UnsafeBufferPointer(rebasing: all[(r * x.columns)..<((r + 1) * x.columns)]))
                #expect(raw == y[r])
                #expect(tree.predictBinned(data, row: r, splitBin: bins) == raw)
            }
        }
    }

    @Test func minSamplesLeafAndDepthAreRespected() {
        let (x, y) = syntheticData(seed: 4, rows: 100)
        let (tree, _) = TreeBuilder.fit(data: BinnedFeatures(x), target: y, rows: (0..<100).map { Int32($0) },
                                        limits: TreeLimits(maxDepth: 2, minSamplesLeaf: 10))
        #expect(tree.nodeCount <= 7)
        // Count the samples reaching each leaf.
        var counts = [Int](repeating: 0, count: tree.nodeCount)
        x.values.withUnsafeBufferPointer { all in
            for r in 0..<x.rows {
                var node = 0
                while tree.feature[node] >= 0 {
                    node = Int(all[r * x.columns + Int(tree.feature[node])] <= tree.threshold[node] ? tree.left[node] : tree.right[node])
                }
                counts[node] += 1
            }
        }
        for i in 0..<tree.nodeCount where tree.feature[i] < 0 { #expect(counts[i] >= 10) }
    }

    @Test(arguments: [PredictorModelKind.gbdt, .rf, .ridge])
    func fitsAreDeterministicForASeed(kind: PredictorModelKind) throws {
        let (x, y) = syntheticData(seed: 5, rows: 120)
        let a = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(kind))
        let b = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(kind))
        #expect(a == b)
        if kind != .ridge {
            let c = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(kind, seed: 2))
            #expect(a.model != c.model)
        }
    }

    @Test(arguments: [PredictorModelKind.gbdt, .rf])
    func treeModelsLearnANonlinearTarget(kind: PredictorModelKind) throws {
        let (x, y) = syntheticData(seed: 6, rows: 300)
        let (xt, yt) = syntheticData(seed: 7, rows: 300)
        let p = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(kind))
        let tau = RankMetrics.kendallTau(p.predict(xt), yt)
        #expect(tau > 0.85, "\(kind): held-out tau \(tau)")
        let cv = try #require(p.crossValidation)
        #expect(cv.folds == 3 && cv.kendallTau > 0.8 && cv.rmse > 0 && cv.spearmanRho > cv.kendallTau)
    }

    @Test func ridgeRecoversALinearFunction() {
        let (x, _) = syntheticData(seed: 8, rows: 80, columns: 5, levels: 7)
        let y = (0..<x.rows).map { 1.5 - 2 * x[$0, 0] + 0.25 * x[$0, 2] }
        let m = RidgeRegression.fit(x, y, alpha: 0)
        #expect(abs(m.intercept - 1.5) < 1e-6)
        #expect(abs(m.coefficients[0] + 2) < 1e-6 && abs(m.coefficients[1]) < 1e-6 && abs(m.coefficients[2] - 0.25) < 1e-6 && abs(m.coefficients[4]) < 1e-6)
        // A penalty shrinks the slopes towards zero.
        let shrunk = RidgeRegression.fit(x, y, alpha: 50)
        #expect(abs(shrunk.coefficients[0]) < 2)
    }

    @Test(arguments: [PredictorModelKind.gbdt, .rf, .ridge])
    func fileRoundTripGivesIdenticalPredictions(kind: PredictorModelKind) throws {
        let (x, y) = syntheticData(seed: 9, rows: 60)
        let names = (0..<6).map { FeatureName(key: "f\($0)") }
        let p = try Predictor.fit(x, y, features: names, target: "t", options: smallOptions(kind))
        let text = p.fileText
        let back = try Predictor(json: try JSONValue.parse(text))
        #expect(back.predict(x) == p.predict(x))
        #expect(back.features == names && back.target == "t" && back.trainedOn == 60)
        #expect(back.crossValidation == p.crossValidation)
    }

    @Test(arguments: [PredictorModelKind.gbdt, .rf, .ridge])
    func batchPredictionEqualsOneRowAtATime(kind: PredictorModelKind) throws {
        let (x, y) = syntheticData(seed: 12, rows: 50)
        let (xt, _) = syntheticData(seed: 13, rows: 2100, levels: 6)  // more than one chunk, unseen values
        let p = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(kind))
        let batch = p.predict(xt)
        xt.values.withUnsafeBufferPointer { all in
            for r in 0..<xt.rows {
                #expect(batch[r] == p.model.predict(UnsafeBufferPointer(rebasing: all[(r * 6)..<((r + 1) * 6)])))
            }
        }
    }

    @Test func fileErrorsSayWhatIsWrong() throws {
        let (x, y) = syntheticData(seed: 10, rows: 30)
        let p = try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(.ridge))
        func message(_ json: JSONValue) -> String {
            do { _ = try Predictor(json: json); return "" } catch { return error.message }
        }
        #expect(message(p.json.with("version", .int(2))).contains("version 2 is not supported"))
        #expect(message(p.json.with("format", .string("other"))).contains("not a predictor file"))
        #expect(message(p.json.with("model", .string("svm"))).contains("unknown model"))
        #expect(message(p.json.with("coefficients", .array([]))).contains("coefficients"))
        #expect(message(.array([])).contains("JSON object"))
    }

    @Test func tooFewSamplesAreRefused() {
        let (x, y) = syntheticData(seed: 11, rows: 9)
        #expect(throws: PredictorError.self) {
            try Predictor.fit(x, y, features: (0..<6).map { FeatureName(key: "f\($0)") }, target: "t", options: smallOptions(.gbdt))
        }
    }

    @Test func featuresAreReadFromArchLines() throws {
        #expect(FeatureName.official.count == 31)
        #expect(FeatureName.official.map(\.description).prefix(3) == ["resolution", "width[0]", "width[1]"])
        #expect(FeatureName("kernel_size[6]") == FeatureName(key: "kernel_size", index: 6))
        #expect(FeatureName("width[x]") == nil && FeatureName("") == nil)
        let arch = Arch(resolution: 224, width: [16, 24, 24, 40, 72, 120, 216, 216, 1792], depth: [2, 3, 6, 6, 7, 3, 2],
                        kernelSize: [5, 3, 3, 5, 3, 3, 3], expandRatio: [1, 5, 6, 4, 5, 6, 6])
        var v: [Double] = []
        try FeatureName.official.values(in: arch.merged(), appendingTo: &v)
        #expect(v == ([224] + arch.width + arch.depth + arch.kernelSize + arch.expandRatio).map(Double.init))
        #expect(throws: FeatureError.self) { try FeatureName.official.values(in: .object([("resolution", .int(224))]), appendingTo: &v) }
    }
}
