import ArgumentParser
import FileFormats
import Search
import ToolSupport
import System

@main
struct FitPredictor: Tool {
    static let configuration = CommandConfiguration(
        commandName: "fit-predictor",
        abstract: "Fit an accuracy predictor to arch JSON lines that carry an accuracy.",
        discussion: """
            Reads arch lines with a target value (acc1 by default), fits a model from the \
            official 31-number encoding (resolution, 9 widths, 7 depths, 7 kernel sizes, \
            7 expand ratios) to the target, and writes a versioned JSON predictor file. \
            k-fold cross-validated Kendall tau, Spearman rho and RMSE go to stderr and into \
            the file. The same input and seed give the same file.

            Models: gbdt (gradient-boosted trees, default), rf (random forest), ridge, mlp \
            (multilayer perceptron: --hidden, --activation, --steps, --batch-size, \
            --learning-rate, --weight-decay).

            Examples:
              sample-subnets --space pipelines/spaces/alphanet.json -n 512 --unique | estimate-acc ... > evaluated.jsonl
              fit-predictor -o predictor.json < evaluated.jsonl
              fit-predictor --model rf --folds 10 --seed 3 -o rf.json evaluated.jsonl
              fit-predictor --model mlp --hidden 64,64 --activation tanh -o mlp.json evaluated.jsonl
            """)

    @Argument(help: ArgumentHelp("Arch JSON lines with the target ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Predictor file to write ('-': stdout).", valueName: "file"))
    var output: String

    @Option(help: "Model family: gradient-boosted trees, random forest, ridge regression or a multilayer perceptron.")
    var model: PredictorModelKind = .gbdt

    @Option(help: ArgumentHelp("Key of the value to predict.", valueName: "key"))
    var target: String = "acc1"

    @Option(help: "Folds of cross-validation (0: none).")
    var folds: Int = 5

    @Option(help: "Random seed (subsamples, bootstrap samples, fold assignment).")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Comma-separated features: 'official' (the 31-number encoding) and/or keys such as flops, params or width[3].", valueName: "list"))
    var features: String = "official"

    @Option(help: "Trees (gbdt default 800, rf default 100).")
    var trees: Int?

    @Option(name: .customLong("learning-rate"), help: "gbdt shrinkage (default 0.02); mlp Adam step size (default 0.01).")
    var learningRate: Double?

    @Option(name: .customLong("max-depth"), help: "Tree depth limit (gbdt default 5; rf default: none).")
    var maxDepth: Int?

    @Option(help: "gbdt: fraction of lines drawn to fit each tree (default 0.5).")
    var subsample: Double?

    @Option(name: .customLong("min-samples-leaf"), help: "Fewest lines in a tree leaf (gbdt default 3, rf default 1).")
    var minSamplesLeaf: Int?

    @Option(help: "ridge: L2 penalty on standardised features (default 1).")
    var alpha: Double?

    @Option(help: ArgumentHelp("mlp: comma-separated hidden layer widths (default 64,64).", valueName: "list"))
    var hidden: String?

    @Option(help: "mlp: hidden-layer activation (default tanh).")
    var activation: MLPActivation?

    @Option(help: "mlp: Adam steps (default 2000).")
    var steps: Int?

    @Option(name: .customLong("batch-size"), help: "mlp: lines per step, 0 for all (default 128).")
    var batchSize: Int?

    @Option(name: .customLong("weight-decay"), help: "mlp: decoupled weight decay (default 1).")
    var weightDecay: Double?

    func featureNames() throws -> [FeatureName] {
        var out: [FeatureName] = []
        for part in features.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if part == "official" { out += FeatureName.official; continue }
            guard let f = FeatureName(part) else { throw ValidationError("--features: bad feature name '\(part)'") }
            out.append(f)
        }
        guard !out.isEmpty else { throw ValidationError("--features lists no feature") }
        guard Set(out).count == out.count else { throw ValidationError("--features lists a feature twice") }
        return out
    }

    func options() throws -> PredictorOptions {
        var o = PredictorOptions()
        o.kind = model
        o.folds = folds
        o.seed = seed
        if let trees { o.gbdt.trees = trees; o.rf.trees = trees }
        if let learningRate { o.gbdt.learningRate = learningRate; o.mlp.learningRate = learningRate }
        if let maxDepth { o.gbdt.maxDepth = maxDepth; o.rf.maxDepth = maxDepth }
        if let subsample { o.gbdt.subsample = subsample }
        if let minSamplesLeaf { o.gbdt.minSamplesLeaf = minSamplesLeaf; o.rf.minSamplesLeaf = minSamplesLeaf }
        if let alpha { o.ridgeAlpha = alpha }
        if let hidden {
            let widths = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !widths.isEmpty, widths.allSatisfy({ $0 != nil }) else { throw ValidationError("--hidden must be comma-separated integers, such as 64,64, not '\(hidden)'") }
            o.mlp.hidden = widths.compactMap { $0 }
        }
        if let activation { o.mlp.activation = activation }
        if let steps { o.mlp.steps = steps }
        if let batchSize { o.mlp.batchSize = batchSize }
        if let weightDecay { o.mlp.weightDecay = weightDecay }
        if let p = o.problem { throw ValidationError(p) }
        return o
    }

    func validate() throws {
        _ = try options()
        _ = try featureNames()
    }

    mutating func execute() throws {
        let options = try options()
        let names = try featureNames()
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        var x: [Double] = []
        var y: [Double] = []
        while let line = try reader.next() {
            guard let t = line[target] else {
                throw Failure.data("missing target key '\(target)'", at: reader.location)
            }
            guard let v = t.doubleValue, v.isFinite else {
                throw Failure.data("target '\(target)': expected a number, found \(t.kindName)", at: reader.location)
            }
            do { try names.values(in: line, appendingTo: &x) } catch { throw error.located(at: reader.location) }
            y.append(v)
        }
        guard y.count >= options.minimumSamples else {
            throw Failure.data("only \(y.count) lines with '\(target)'; fit-predictor needs at least \(options.minimumSamples) (2 per fold, and at least 10)", at: reader.sourceName)
        }
        let matrix = FeatureMatrix(rows: y.count, columns: names.count, values: x)
        let predictor: Predictor
        do {
            predictor = try Predictor.fit(matrix, y, features: names, target: target, options: options)
        } catch {
            throw error.located(at: reader.sourceName)
        }
        let sink = try OutputSink(path: output)
        try sink.write(predictor.fileText)
        try sink.commit()
        var report = "\(options.kind.rawValue) on \(y.count) lines, \(names.count) features"
        if let cv = predictor.crossValidation {
            report += "; \(cv.folds)-fold CV: kendall_tau \(fmt(cv.kendallTau)) (sd \(fmt(cv.kendallTauSD))), spearman_rho \(fmt(cv.spearmanRho)), rmse \(fmt(cv.rmse))"
        }
        Diagnostics.info(report)
    }

    func fmt(_ v: Double) -> String { "\(v.roundedTo(4))" }
}
