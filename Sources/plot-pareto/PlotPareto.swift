import ArgumentParser
import FileFormats
import Plotting
import ToolSupport
import System

@main
struct PlotPareto: Tool {
    static let configuration = CommandConfiguration(
        commandName: "plot-pareto",
        abstract: "Draw accuracy vs FLOPs of arch JSON lines as an SVG picture.",
        discussion: """
            Pareto mode (--points and/or --front): the --points lines as dots, the --searched \
            lines as rings, the --front lines as a line in order of FLOPs, and the --points \
            lines with the fewest and the most FLOPs marked as the min and max subnets \
            (sample-subnets --min --max writes them). The front and the min/max marks carry \
            error bars, the 95% interval of each accuracy from the number of validation images \
            it was measured on (estimate-acc's val_images).

            History mode (--history): one line per model through its accuracy at each \
            checkpoint, models told apart by --group and coloured by --color-by, as written by \
            Scripts/reevaluate.

            Lines without a number under --x or --y are skipped. The SVG is written under a \
            temporary name and renamed. For a PNG: rsvg-convert -o out.png out.svg.

            Examples:
              plot-pareto --points subnets-acc.jsonl --front pareto.jsonl -o pareto.svg
              plot-pareto --history history.jsonl -o history.svg
            """)

    @Option(help: ArgumentHelp("Arch JSON lines to draw as dots (e.g. the sampled subnets).", valueName: "file"))
    var points: String?

    @Option(help: ArgumentHelp("Arch JSON lines to draw as a line (e.g. the searched front).", valueName: "file"))
    var front: String?

    @Option(help: ArgumentHelp("Arch JSON lines to draw as rings (e.g. the searched archs, re-measured).", valueName: "file"))
    var searched: String?

    @Option(help: ArgumentHelp("History JSON lines (Scripts/reevaluate) to draw as one line per model.", valueName: "file"))
    var history: String?

    @Option(help: ArgumentHelp("Key of the x value (default: flops; history: step).", valueName: "key"))
    var x: String?

    @Option(help: ArgumentHelp("Key of the y value.", valueName: "key"))
    var y: String = "acc1"

    @Option(name: .customLong("y-error"), help: ArgumentHelp("History: key of each point's error bar half-length (e.g. acc1_std of compare-runs).", valueName: "key"))
    var yError: String?

    @Flag(help: "History: draw each point as a dot, not joined by lines (one measure against another, e.g. supernet vs stand-alone accuracy).")
    var scatter = false

    @Option(help: ArgumentHelp("History: key that names a model.", valueName: "key"))
    var group: String = "arch_id"

    @Option(name: .customLong("color-by"), help: ArgumentHelp("History: key whose values get one colour and legend row each.", valueName: "key"))
    var colorBy: String = "set"

    @Option(help: ArgumentHelp("Title (default: one naming the mode).", valueName: "text"))
    var title: String?

    @Option(name: .customLong("x-label"), help: ArgumentHelp("x axis label (default from --x).", valueName: "text"))
    var xLabel: String?

    @Option(name: .customLong("y-label"), help: ArgumentHelp("y axis label (default from --y).", valueName: "text"))
    var yLabel: String?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("SVG file to write ('-' or nothing: stdout).", valueName: "file"))
    var output: String?

    func validate() throws {
        if history != nil && (points != nil || front != nil || searched != nil) { throw ValidationError("give --history, or --points/--front/--searched, not both") }
        if history == nil && points == nil && front == nil { throw ValidationError("give --points, --front or --history") }
        if history == nil && yError != nil { throw ValidationError("--y-error goes with --history") }
        if history == nil && scatter { throw ValidationError("--scatter goes with --history") }
        if [points, front, searched].filter({ $0 == "-" }).count > 1 { throw ValidationError("only one input can be stdin") }
    }

    mutating func execute() throws {
        let chart: Chart
        if let history {
            let xKey = x ?? "step"
            chart = Chart.history(try Self.readLines(history), xKey: xKey, yKey: y, groupKey: group, colorKey: colorBy,
                                  yErrorKey: yError, scatter: scatter, title: title ?? "Accuracy of each model over training",
                                  xLabel: xLabel ?? Self.label(xKey), yLabel: yLabel ?? Self.label(y))
        } else {
            let xKey = x ?? "flops"
            chart = Chart.pareto(sampled: try points.map(Self.readLines) ?? [], front: try front.map(Self.readLines) ?? [],
                                 searched: try searched.map(Self.readLines) ?? [], xKey: xKey, yKey: y, title: title ?? "Accuracy vs FLOPs",
                                 xLabel: xLabel ?? Self.label(xKey), yLabel: yLabel ?? Self.label(y))
        }
        if chart.series.allSatisfy({ $0.points.isEmpty }) {
            throw Failure(.dataError, "no line has numbers under both '\(x ?? (history == nil ? "flops" : "step"))' and '\(y)'")
        }
        let sink = try OutputSink(path: output)
        try sink.write(chart.svg())
        try sink.commit()
    }

    static func readLines(_ path: String) throws -> [JSONValue] {
        var reader = try JSONLinesReader(path: path)
        defer { reader.close() }
        var lines: [JSONValue] = []
        while let line = try reader.next() { lines.append(line) }
        return lines
    }

    /// Axis labels for the keys of DESIGN.md's arch lines.
    static func label(_ key: String) -> String {
        switch key {
        case "flops": return "MFLOPs per image"
        case "params": return "parameters (millions)"
        case "acc1": return "top-1 accuracy (%)"
        case "acc5": return "top-5 accuracy (%)"
        case "acc1_pred": return "predicted top-1 accuracy (%)"
        case "step": return "checkpoint step"
        default: return key
        }
    }
}
