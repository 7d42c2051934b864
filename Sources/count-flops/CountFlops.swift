import ArgumentParser
import FileFormats
import Supernet
import ToolSupport

@main
struct CountFlops: Tool {
    static let configuration = CommandConfiguration(
        commandName: "count-flops",
        abstract: "Add flops (MFLOPs per image) and params (millions) to arch JSON lines.",
        discussion: """
            A filter: reads arch lines (official keys resolution, width, depth, kernel_size, \
            expand_ratio) and writes each back with flops and params set, keeping every other key.

            Example:
              echo '{"resolution":32,"width":[8,8,16,24,32,48,64,80,256],"depth":[1,2,2,2,2,2,1],"kernel_size":[3,3,3,3,3,3,3],"expand_ratio":[1,3,3,3,3,3,3]}' \\
                | count-flops --space pipelines/spaces/tiny.json
            """)

    @OptionGroup var spaceOptions: SpaceOptions

    @Argument(help: ArgumentHelp("Arch JSON lines to read ('-' or nothing: stdin).", valueName: "file"))
    var input: String?

    @Flag(name: .customLong("any-resolution"), help: "Accept resolutions outside the space's list.")
    var anyResolution = false

    mutating func execute() throws {
        let space = try spaceOptions.load()
        var reader = try JSONLinesReader(path: input)
        defer { reader.close() }
        let out = StandardOutput.shared
        while let line = try reader.nextArch(in: space, anyResolution: anyResolution) {
            let enriched = line.json
                .with("flops", .double(line.arch.flops(in: space).roundedTo(4)))
                .with("params", .double(line.arch.params(in: space).roundedTo(4)))
            try out.write(enriched.jsonText + "\n")
        }
    }
}
