import ArgumentParser
import FileFormats
import Search
import Supernet
import ToolSupport
import System

@main
struct PredictAcc: Tool {
    static let configuration = CommandConfiguration(
        commandName: "predict-acc",
        abstract: "Add predicted accuracy to arch JSON lines.",
        discussion: """
            A filter: reads arch lines, and writes each back with the predictor's estimate \
            under <target>_pred (acc1_pred for a predictor of acc1), keeping every other key. \
            The predictor file comes from fit-predictor.

            Example:
              sample-subnets --space pipelines/spaces/alphanet.json -n 1000 | predict-acc --predictor predictor.json
            """)

    @Option(help: ArgumentHelp("Predictor file written by fit-predictor.", valueName: "file"))
    var predictor: String

    @Argument(help: ArgumentHelp("Arch JSON lines to read ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    @Option(help: ArgumentHelp("Key to write (default: the predictor's target followed by _pred).", valueName: "key"))
    var key: String?

    @Option(help: ArgumentHelp("Search space JSON: every arch line must be one of its subnets (without it, archs are only checked to be plausible).", valueName: "file"))
    var space: String?

    mutating func execute() throws {
        let model: Predictor
        model = try Predictor(contentsOf: predictor)
        let outKey = key ?? "\(model.target)_pred"
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        let out = StandardOutput.shared
        let batch = 8192
        var lines: [JSONValue] = []
        var x: [Double] = []
        func flush() throws {
            let predictions = model.predict(FeatureMatrix(rows: lines.count, columns: model.features.count, values: x))
            for (line, p) in zip(lines, predictions) {
                try out.write(line.with(outKey, .double(p)).jsonText + "\n")
            }
            lines.removeAll(keepingCapacity: true)
            x.removeAll(keepingCapacity: true)
        }
        let space = try self.space.map { try SearchSpace(contentsOf: $0) }
        while let line = try reader.next() {
            // An arch the predictor has never seen the like of gets no number.
            do {
                let arch = try Arch(json: line)
                try space.map { s throws(ArchError) in try arch.validate(in: s) }
            } catch { throw error.located(at: reader.location) }
            do { try model.features.values(in: line, appendingTo: &x) } catch { throw error.located(at: reader.location) }
            lines.append(line)
            if lines.count == batch { try flush() }
        }
        try flush()
    }
}
