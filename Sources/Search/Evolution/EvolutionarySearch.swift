import FileFormats
import Supernet
import System

/// One finished generation, for progress and for saving the state.
public struct GenerationReport: Sendable {
    public var generation: Int
    /// Archs evaluated so far (sent, or answered from a resumed state).
    public var evaluations: Int
    /// Archs sent to the evaluator in this generation.
    public var sent: Int
    /// Archs of this generation answered from a resumed state.
    public var replayed: Int
    /// Archs this generation proposed that were already evaluated.
    public var cached: Int
}

/// Why a search stopped early: the evaluator failed, or gave an answer that
/// is not usable. Answers before it are in `EvolutionarySearch.records`.
public struct SearchFailure: ReportableError, Sendable {
    public var message: String
    /// The evaluator failed: a runtime failure (1).
    public var status: ExitStatus { .failure }
}

/// Runs a `SearchAlgorithm` against an `ArchEvaluator` under a budget.
///
/// Every arch is evaluated at most once: proposals already evaluated are
/// answered from a cache and cost nothing; new ones count against `budget`,
/// and those past it are cut. A search resumes from the records a previous
/// run saved (`replaying`): the algorithm, a pure function of its seed and
/// results, is run again from the start, and every arch it proposes that the
/// records hold is answered from them instead of the evaluator, so it reaches
/// the same point as the interrupted run without re-evaluating anything and
/// then continues as the uninterrupted run would have.
public final class EvolutionarySearch {
    public let space: SearchSpace
    public let bounds: FlopsBounds
    /// The cost the bounds and the front are in.
    public let objective: SearchObjective
    public let budget: Int
    /// Every arch evaluated, in order (answered by the evaluator or replayed).
    public private(set) var records: [EvaluatedArch] = []
    public private(set) var generation = 0
    /// Generations in a row that may propose nothing new before the search
    /// gives up (an algorithm stuck on archs it already has).
    public var maxIdleGenerations = 50
    private var algorithm: any SearchAlgorithm
    private let evaluator: any ArchEvaluator
    private var known: [Arch: Int] = [:]
    private var replay: [Arch: JSONValue] = [:]

    /// `replaying`: result lines of an interrupted run of the same search.
    public init(space: SearchSpace, bounds: FlopsBounds, budget: Int, algorithm: any SearchAlgorithm,
                evaluator: any ArchEvaluator, replaying: [JSONValue] = [], objective: SearchObjective = .flops) throws(SearchFailure) {
        self.space = space
        self.bounds = bounds
        self.objective = objective
        self.budget = budget
        self.algorithm = algorithm
        self.evaluator = evaluator
        for (i, line) in replaying.enumerated() {
            do {
                let a = try Arch(json: line)
                try a.validate(in: space)
                replay[a] = line
            } catch {
                throw SearchFailure(message: "saved result \(i + 1): \(error)")
            }
        }
    }

    /// Archs of the saved records not yet replayed.
    public var unreplayed: Int { replay.count }

    /// The front of the archs evaluated within the bounds, sorted by FLOPs.
    public var front: [EvaluatedArch] { ParetoFront.extract(records.filter { bounds.contains($0.cost) }) }

    /// Runs generations until the budget is spent or the algorithm has
    /// nothing more to propose; `afterGeneration` sees each finished one (to
    /// save the state and show progress). Throws `SearchFailure` when the
    /// evaluator fails; results before the failure are in `records`.
    public func run(afterGeneration: (GenerationReport) throws -> Void) throws {
        var idle = 0
        while records.count < budget {
            let proposal = algorithm.propose()
            if proposal.isEmpty { return }
            // Split: archs known (cache), replayed, and to send, keeping order.
            var results: [EvaluatedArch?] = Array(repeating: nil, count: proposal.count)
            var toSend: [(index: Int, arch: Arch, request: JSONValue)] = []
            var report = GenerationReport(generation: generation, evaluations: 0, sent: 0, replayed: 0, cached: 0)
            var pending = Set<Arch>()
            var failure: SearchFailure?
            for (i, a) in proposal.enumerated() {
                if let k = known[a] {
                    results[i] = records[k]
                    report.cached += 1
                    continue
                }
                if pending.contains(a) { continue }  // filled in after sending
                // Replayed archs are in records already; sent ones not yet.
                guard records.count + toSend.count < budget else { continue }
                let request = requestLine(a)
                if let saved = replay[a] {
                    do throws(SearchFailure) {
                        results[i] = try accept(request: request, arch: a, answer: saved, source: "the saved state")
                    } catch { failure = error; break }
                    replay[a] = nil
                    record(results[i])
                    report.replayed += 1
                } else {
                    pending.insert(a)
                    toSend.append((i, a, request))
                }
            }
            if failure == nil && !toSend.isEmpty {
                var answers: [JSONValue] = []
                do {
                    answers = try evaluator.evaluate(toSend.map(\.request))
                } catch {
                    answers = error.answers
                    failure = SearchFailure(message: error.message)
                }
                for (t, answer) in zip(toSend, answers) {
                    do throws(SearchFailure) {
                        let r = try accept(request: t.request, arch: t.arch, answer: answer, source: evaluator.name)
                        results[t.index] = r
                        record(r)
                        report.sent += 1
                    } catch {
                        failure = error
                        break
                    }
                }
            }
            if let failure { throw failure }
            // Archs proposed twice in one generation: the first one's answer.
            for (i, a) in proposal.enumerated() where results[i] == nil {
                if let k = known[a] { results[i] = records[k] }
            }
            algorithm.observe(results.compactMap { $0 })
            report.evaluations = records.count
            try afterGeneration(report)
            generation += 1
            idle = report.sent + report.replayed == 0 ? idle + 1 : 0
            if idle >= maxIdleGenerations { return }
        }
    }

    private func record(_ r: EvaluatedArch?) {
        guard let r else { return }
        known[r.arch] = records.count
        records.append(r)
    }

    /// The line sent for an arch: its official keys, flops and params.
    public func requestLine(_ a: Arch) -> JSONValue {
        a.merged().with("flops", .double(a.flops(in: space).roundedTo(4))).with("params", .double(a.params(in: space).roundedTo(4)))
    }

    /// Checks an answer: a JSON object with a finite numeric acc1, about the
    /// arch asked (when it repeats the arch keys). The result line is the
    /// answer with the arch keys, flops and params set by us.
    private func accept(request: JSONValue, arch: Arch, answer: JSONValue, source: String) throws(SearchFailure) -> EvaluatedArch {
        func bad(_ why: String) -> SearchFailure {
            SearchFailure(message: "\(source) \(why) for arch \(request.jsonText) (answer: \(Self.excerpt(answer)))")
        }
        guard case .object = answer else { throw bad("gave no JSON object") }
        guard let acc = answer["acc1"]?.doubleValue, acc.isFinite else { throw bad("gave no numeric acc1") }
        if Arch.keys.contains(where: { answer[$0] != nil }) {
            let echoed: Arch
            do { echoed = try Arch(json: answer) } catch { throw bad("answered with a malformed arch (\(error))") }
            guard echoed == arch else { throw bad("answered about another arch (answers out of order?)") }
        }
        let flops = arch.flops(in: space), params = arch.params(in: space)
        var line = arch.merged(into: answer).with("flops", .double(flops.roundedTo(4))).with("params", .double(params.roundedTo(4)))
        let cost = objective.cost(arch, in: space)
        if objective != .flops { line = line.with(objective.key, .double(cost.roundedTo(4))) }
        return EvaluatedArch(arch: arch, flops: flops, params: params, acc1: acc, line: line, cost: cost)
    }

    private static func excerpt(_ v: JSONValue) -> String {
        let t = v.jsonText
        return t.count > 200 ? String(t.prefix(200)) + "..." : t
    }
}
