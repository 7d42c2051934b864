import FileFormats
import Supernet
import Testing
import TestSupport

@Suite struct SupernetLayoutTests {
    /// Every state_dict name, shape and order of the official dynamic supernet
    /// (generator_checksums.json lists them, made with the official code).
    @Test(.requires(.referenceData), arguments: [("official", "alphanet"), ("tiny", "tiny")])
    func namesShapesAndOrderMatchOfficialStateDict(key: String, spaceName: String) throws {
        let space = try SearchSpace(contentsOf: Paths.space(spaceName))
        let layout = SupernetLayout(space: space)
        let ref = try loadJSON(Paths.reference + "/generator_checksums.json")
        let sd = try #require(ref["spaces"]?[key]?["state_dict"]?.objectValue)
        #expect(layout.entries.map(\.name) == sd.map(\.0))
        for (e, (_, v)) in zip(layout.entries, sd) {
            #expect(JSONValue(e.shape) == v["shape"], "\(e.name)")
        }
        let expectedParams = try #require(ref["spaces"]?[key]?["n_float_values"]?.intValue)
        #expect(layout.parameterCount + layout.bufferCount == Int(expectedParams))
    }

    @Test(.requires(.referenceData)) func supernetParameterCountsMatchReference() throws {
        for (name, file) in [("alphanet", "forward_reference"), ("tiny", "tiny_forward_reference")] {
            let space = try SearchSpace(contentsOf: Paths.space(name))
            let ref = try loadJSON(Paths.reference + "/\(file).json")
            #expect(SupernetLayout(space: space).parameterCount == Int(ref["supernet_params"]?.intValue ?? -1))
        }
    }
}
