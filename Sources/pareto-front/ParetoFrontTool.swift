import ArgumentParser
import FileFormats
import Search
import ToolSupport
import System

@main
struct ParetoFrontTool: Tool {
    static let configuration = CommandConfiguration(
        commandName: "pareto-front",
        abstract: "Keep the non-dominated lines of arch JSON lines (FLOPs vs accuracy).",
        discussion: """
            Reads arch lines from every file given (or stdin) and writes the lines no other \
            line beats, sorted by --x ascending, each with every key it had: a line is \
            dominated when another has no more --x and no less --y and differs in one. Of \
            lines with equal values the first one read is kept. A line without a number \
            under --x or --y is bad data (exit 65, naming the file and line).

            The measured front of a search: the searched archs re-estimated, together with \
            every subnet measured the same way (the min and max included), so that no point \
            of the result is beaten by a subnet on the same plot.

            Example:
              pareto-front searched-acc.jsonl subnets-acc.jsonl > pareto.jsonl
            """)

    @Argument(help: ArgumentHelp("Arch JSON lines to read ('-' or nothing: stdin).", valueName: "file"))
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Key of the cost to minimise.", valueName: "key"))
    var x: String = "flops"

    @Option(help: ArgumentHelp("Key of the value to maximise.", valueName: "key"))
    var y: String = "acc1"

    mutating func execute() throws {
        var lines: [(line: JSONValue, x: Double, y: Double)] = []
        for path in inputs.isEmpty ? ["-"] : inputs {
            var reader = try JSONLinesReader(path: path)
            defer { reader.close() }
            while let line = try reader.next() {
                guard let xv = line[x]?.doubleValue, xv.isFinite, let yv = line[y]?.doubleValue, yv.isFinite else {
                    throw Failure.data("a line without a finite number under '\(x)' and '\(y)'", at: reader.location)
                }
                lines.append((line, xv, yv))
            }
        }
        let out = StandardOutput.shared
        for p in ParetoFront.extract(lines, flops: \.x, accuracy: \.y) {
            try out.write(p.line.jsonText + "\n")
        }
    }
}
