import FileFormats
import Supernet
import System

/// One invocation of `evo-search`: resume from the state file if there is one, run
/// the search generation by generation, save the state after each, and on an
/// evaluator failure keep what was done (the state, and the front so far).
public final class SearchRun {
    public let space: SearchSpace
    public let settings: SearchSettings
    public let budget: Int
    public let statePath: String?
    public let search: EvolutionarySearch
    /// Results replayed from the state file.
    public let resumed: Int
    private let evaluator: any ArchEvaluator

    public init(space: SearchSpace, settings: SearchSettings, budget: Int, statePath: String?, evaluator: any ArchEvaluator) throws(Failure) {
        self.space = space
        self.settings = settings
        self.budget = budget
        self.statePath = statePath
        self.evaluator = evaluator
        let saved = try SearchRun.savedResults(statePath, settings: settings, space: space)
        resumed = saved.count
        do {
            search = try EvolutionarySearch(space: space, bounds: settings.bounds, budget: budget,
                                            algorithm: settings.makeAlgorithm(space: space),
                                            evaluator: evaluator, replaying: saved, objective: settings.objective)
        } catch let e as any ReportableError {
            throw e.located(at: statePath ?? "state")
        } catch {
            throw .data("\(error)", at: statePath ?? "state")
        }
    }

    /// What the search found when its evaluator failed part-way; the state is saved.
    public struct Interrupted: ReportableError {
        public var failure: SearchFailure
        public var front: [EvaluatedArch]
        public var records: [EvaluatedArch]
        public var statePath: String?
        /// Where the caller wrote the front so far ("<stdout>", or a `.partial` file).
        public var frontWrittenTo: String?
        public var status: ExitStatus { .failure }
        public var message: String {
            "\(failure.message) (\(records.count) archs evaluated; front so far, \(front.count) archs, "
                + (frontWrittenTo.map { "written to \($0)" } ?? "not written")
                + (statePath.map { "; state saved to \($0)" } ?? "") + ")"
        }
    }

    /// Runs the search to its budget; `report` after each generation with the front's
    /// hypervolume above `accuracyFloor`. Throws `Interrupted` when the evaluator fails.
    /// Returns the evaluator's closing warning, if any.
    public func run(accuracyFloor: Double, report: (GenerationReport, _ front: [EvaluatedArch], _ hypervolume: Double) -> Void) throws -> String? {
        do {
            try search.run { r in
                try saveState()
                let front = search.front
                report(r, front, ParetoFront.hypervolume(front, bounds: settings.bounds, accuracyFloor: accuracyFloor))
            }
        } catch let failure as SearchFailure {
            try saveState()
            _ = evaluator.finish()
            throw Interrupted(failure: failure, front: search.front, records: search.records, statePath: statePath)
        }
        let warning = evaluator.finish()
        try saveState()
        return warning
    }

    /// The state file, written atomically (nothing without `statePath`).
    public func saveState() throws(Failure) {
        guard let statePath else { return }
        let s = SearchState(settings: settings, budget: budget, space: space.json, results: search.records.map(\.line))
        try writeFileAtomically(statePath, bytes: Array(s.text.utf8))
    }

    /// The saved results to replay, after checking the state matches (none without a file).
    static func savedResults(_ path: String?, settings: SearchSettings, space: SearchSpace) throws(Failure) -> [JSONValue] {
        guard let path, let bytes = try? readWholeFile(path) else { return [] }
        let json: JSONValue
        do {
            json = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in try JSONValue.parse(bytes: buf) }
        } catch {
            throw error.located(at: path)
        }
        let saved: SearchState
        do { saved = try SearchState(json: json) } catch { throw error.located(at: path) }
        if let why = saved.mismatch(settings: settings, space: space.json) {
            throw .usage("cannot resume: \(why); use the same options or another --state file", at: path)
        }
        return saved.results
    }
}

extension Predictor {
    /// An in-process evaluator: acc1 is the predictor's estimate of its target.
    public func evaluator(name: String) -> any ArchEvaluator {
        FunctionEvaluator(name: name) { _, lines in try self.predict(lines: lines) }
    }
}
