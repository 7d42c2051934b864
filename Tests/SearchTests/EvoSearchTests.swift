import System
import FileFormats
import Foundation
import NASCore
import Search
import Supernet
import Testing
import TestSupport

enum EvoPaths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static func space(_ name: String) -> String { repo + "/pipelines/spaces/\(name).json" }
}

/// A deterministic fake accuracy with interactions between genes, from the
/// arch alone; records every arch it is asked about.
final class FakeScorer {
    let space: SearchSpace
    var asked: [Arch] = []
    /// Answers given before failing, when set.
    var failAfter: Int?

    init(space: SearchSpace) { self.space = space }

    func acc(_ a: Arch) -> Double {
        let f = a.flops(in: space)
        let shape = Double(a.depth.reduce(0, +)) * 0.05 - Double(a.kernelSize.filter { $0 == 5 }.count) * 0.03
        return 60 + 4 * log(f / 200) + shape + Double(a.resolution % 64) * 0.002
    }

    func evaluator() -> FunctionEvaluator {
        FunctionEvaluator(name: "fake") { [self] archs, _ in
            var out: [Double] = []
            for a in archs {
                if let n = failAfter, asked.count >= n { struct Boom: Error {}; throw Boom() }
                asked.append(a)
                out.append(acc(a))
            }
            return out
        }
    }
}

@Suite struct EvoSearchTests {
    let space: SearchSpace
    let bounds = FlopsBounds(min: 200, max: 1200)

    init() throws { space = try SearchSpace(contentsOf: EvoPaths.space("alphanet")) }

    func settings(_ kind: SearchAlgorithmKind, seed: UInt64) -> SearchSettings {
        SearchSettings(algorithm: kind, seed: seed, bounds: bounds, population: 40, mutate: 16, crossover: 16)
    }

    func run(_ kind: SearchAlgorithmKind, seed: UInt64, budget: Int, scorer: FakeScorer,
             replaying: [JSONValue] = []) throws -> EvolutionarySearch {
        let search = try EvolutionarySearch(space: space, bounds: bounds, budget: budget,
                                            algorithm: settings(kind, seed: seed).makeAlgorithm(space: space),
                                            evaluator: scorer.evaluator(), replaying: replaying)
        try search.run { _ in }
        return search
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func budgetRespectedAndNoArchEvaluatedTwice(kind: SearchAlgorithmKind) throws {
        let scorer = FakeScorer(space: space)
        let search = try run(kind, seed: 3, budget: 150, scorer: scorer)
        #expect(search.records.count == 150)
        #expect(scorer.asked.count == 150)
        #expect(Set(scorer.asked).count == scorer.asked.count)
        #expect(search.records.map(\.arch) == scorer.asked)
        for r in search.records {
            #expect(r.acc1 == scorer.acc(r.arch))
            #expect(r.line["acc1"]?.doubleValue == r.acc1)
        }
        // Every arch but the official min subnet lies within the bounds.
        #expect(search.records.dropFirst().allSatisfy { bounds.contains($0.flops) })
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func sameSeedSameSearch(kind: SearchAlgorithmKind) throws {
        let a = try run(kind, seed: 7, budget: 120, scorer: FakeScorer(space: space))
        let b = try run(kind, seed: 7, budget: 120, scorer: FakeScorer(space: space))
        let c = try run(kind, seed: 8, budget: 120, scorer: FakeScorer(space: space))
        #expect(a.records.map(\.arch) == b.records.map(\.arch))
        #expect(a.records.map(\.arch) != c.records.map(\.arch))
    }

    /// A search replaying part of an earlier run's results asks the
    /// evaluator for none of them and ends exactly where the uninterrupted
    /// run ends.
    @Test(arguments: SearchAlgorithmKind.allCases)
    func resumeReplaysWithoutReevaluating(kind: SearchAlgorithmKind) throws {
        let full = try run(kind, seed: 5, budget: 200, scorer: FakeScorer(space: space))
        let saved = Array(full.records.prefix(130)).map(\.line)
        let scorer = FakeScorer(space: space)
        let resumed = try run(kind, seed: 5, budget: 200, scorer: scorer, replaying: saved)
        #expect(resumed.records.map(\.arch) == full.records.map(\.arch))
        #expect(scorer.asked == Array(full.records.dropFirst(130).map(\.arch)))
        #expect(resumed.unreplayed == 0)
        // A finished search extended with a larger budget: the same again.
        let small = try run(kind, seed: 5, budget: 110, scorer: FakeScorer(space: space))
        let more = FakeScorer(space: space)
        let extended = try run(kind, seed: 5, budget: 200, scorer: more, replaying: small.records.map(\.line))
        #expect(extended.records.map(\.arch) == full.records.map(\.arch))
        #expect(more.asked == Array(full.records.dropFirst(110).map(\.arch)))
    }

    @Test func evaluatorFailureKeepsAnswersSoFar() throws {
        let scorer = FakeScorer(space: space)
        scorer.failAfter = 10
        let search = try EvolutionarySearch(space: space, bounds: bounds, budget: 100,
                                            algorithm: settings(.front, seed: 1).makeAlgorithm(space: space),
                                            evaluator: scorer.evaluator())
        #expect(throws: SearchFailure.self) { try search.run { _ in } }
        // The function evaluator fails a batch as a whole: nothing of it kept.
        #expect(search.records.isEmpty)
    }

    /// The official search's structure: generation 0 is the min subnet and
    /// population - 1 FLOPs-bounded archs; the table holds the best arch per
    /// rounded FLOPs bucket; later generations are mutate + crossover
    /// children within the bounds.
    @Test func officialStructure() throws {
        var official = OfficialSearch(space: space, settings: settings(.official, seed: 2))
        let first = official.propose()
        #expect(first.count == 40)
        #expect(first.first == space.minArch)
        #expect(first.dropFirst().allSatisfy { bounds.contains($0.flops(in: space)) })
        let scorer = FakeScorer(space: space)
        let results = first.map { a in
            EvaluatedArch(arch: a, flops: a.flops(in: space), params: 0, acc1: scorer.acc(a), line: a.merged())
        }
        official.observe(results)
        var best: [Double: Double] = [:]
        for r in results {
            let key = (r.flops / 10).rounded(.toNearestOrEven) * 10
            best[key] = max(best[key] ?? -.infinity, r.acc1)
        }
        let table = official.table
        #expect(table.count == best.count)
        for t in table {
            #expect(best[(t.flops / 10).rounded(.toNearestOrEven) * 10] == t.acc1)
        }
        let next = official.propose()
        #expect(next.count == 32)
        #expect(next.allSatisfy { bounds.contains($0.flops(in: space)) })
    }

    @Test func officialMutationAndCrossover() throws {
        let layout = GeneLayout(space: space)
        var r = SeededRandom(seed: 1)
        let a = space.minArch, b = space.maxArch
        #expect(OfficialVariation.mutate(a, prob: 0, layout: layout, random: &r) == a)
        let m = OfficialVariation.mutate(a, prob: 1, layout: layout, random: &r)
        for (i, (x, y)) in zip(layout.genes(a), layout.genes(m)).enumerated() {
            #expect(layout.choices[i].count == 1 ? x == y : x != y)
        }
        let c = OfficialVariation.crossover(a, b, layout: layout, random: &r)
        for (i, g) in layout.genes(c).enumerated() {
            #expect(g == layout.genes(a)[i] || g == layout.genes(b)[i])
        }
        let s = LocalVariation.step(a, moves: 2, layout: layout, random: &r)
        let changed = zip(layout.genes(a), layout.genes(s)).filter { $0 != $1 }.count
        #expect(changed == 2)
        try s.validate(in: space)
    }

    @Test func stateRoundTrips() throws {
        let search = try run(.official, seed: 4, budget: 60, scorer: FakeScorer(space: space))
        let st = SearchState(settings: settings(.official, seed: 4), budget: 60, space: space.json, results: search.records.map(\.line))
        let back = try SearchState(json: try JSONValue.parse(st.text))
        #expect(back.settings == st.settings)
        #expect(back.results == st.results)
        #expect(back.mismatch(settings: settings(.official, seed: 4), space: space.json) == nil)
        #expect(back.mismatch(settings: settings(.official, seed: 5), space: space.json) != nil)
        #expect(back.mismatch(settings: settings(.front, seed: 4), space: space.json) != nil)
    }
}
