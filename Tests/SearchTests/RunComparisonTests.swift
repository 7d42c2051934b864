import Search
import Testing

@Suite("Run comparison")
struct RunComparisonTests {
    typealias P = RunComparison.Point

    func run(_ arm: String, min: Double, mid: Double, max: Double, extra: [(Double, Double)] = []) -> RunComparison.Run {
        .init(arm: arm, points: [P(role: "max", flops: 30, acc1: max, valImages: 10_000), P(role: "min", flops: 5, acc1: min, valImages: 10_000),
                                 P(role: "mid1", flops: 15, acc1: mid, valImages: 10_000)] + extra.map { P(role: nil, flops: $0.0, acc1: $0.1) })
    }

    /// Means and sample standard deviations against hand-computed values; roles in FLOPs order.
    @Test func summariesAreMeanAndSampleStd() throws {
        let c = try RunComparison(runs: [run("a", min: 80, mid: 84, max: 90), run("a", min: 82, mid: 86, max: 90), run("b", min: 70, mid: 75, max: 88)])
        #expect(c.arms == ["a", "b"] && c.roles == ["min", "mid1", "max"])
        let aMin = try #require(c.rows.first { $0.arm == "a" && $0.role == "min" })
        #expect(aMin.acc1.mean == 81 && abs(aMin.acc1.std - 2.0.squareRoot()) < 1e-12 && aMin.flops == 5)
        let bMax = try #require(c.rows.first { $0.arm == "b" && $0.role == "max" })
        #expect(bMax.acc1.values == [88] && bMax.acc1.std == 0)
        #expect(c.runCount("a") == 2 && c.runCount("b") == 1)
        // One estimate's SE at 10,000 images: sqrt(p(1-p)/n) in points, averaged.
        let accuracies: [Double] = [80, 84, 90, 82, 86, 90, 70, 75, 88]
        let se: [Double] = accuracies.map { (a: Double) -> Double in
            let p = a / 100
            return 100 * (p * (1 - p) / 10_000).squareRoot()
        }
        let meanSE = se.reduce(0, +) / 9
        #expect(abs((c.standardError ?? 0) - meanSE) < 1e-12)
    }

    /// Hypervolume with floor 0 over 5-30 MFLOPs: the front's step curve averaged over FLOPs.
    @Test func hypervolumeIsTheFrontAveragedOverFlops() throws {
        // Front: (5, 80), (15, 84), (30, 90); an unnamed (20, 83) is dominated.
        let c = try RunComparison(runs: [run("a", min: 80, mid: 84, max: 90, extra: [(20, 83)])])
        let expected: Double = 0.4 * 80 + 0.6 * 84
        #expect(abs((c.hypervolume["a"]?.mean ?? 0) - expected) < 1e-12)
        // An unnamed point that joins the front raises it: (10, 83).
        let d = try RunComparison(runs: [run("a", min: 80, mid: 84, max: 90, extra: [(10, 83)])])
        let raised: Double = 0.2 * 80 + 0.2 * 83 + 0.6 * 84
        #expect(abs((d.hypervolume["a"]?.mean ?? 0) - raised) < 1e-12)
        let floored = try RunComparison(runs: [run("a", min: 80, mid: 84, max: 90)], accuracyFloor: 82)
        let above: Double = 0.6 * 2
        #expect(abs((floored.hypervolume["a"]?.mean ?? 0) - above) < 1e-12)
    }

    @Test func mismatchedRunsAreRefusedNamingTheRun() {
        let good = run("a", min: 80, mid: 84, max: 90)
        var missing = good
        missing.points.removeAll { $0.role == "mid1" }
        #expect(throws: RunComparison.Mismatch.self) { try RunComparison(runs: [good, missing]) }
        do { _ = try RunComparison(runs: [good, missing]) } catch { #expect(error.run == 1 && error.description.contains("differ")) }
        var moved = good
        moved.points[2].flops = 16
        do { _ = try RunComparison(runs: [good, moved]); Issue.record("another arch accepted") } catch { #expect(error.run == 1 && error.description.contains("not the same arch")) }
        var twice = good
        twice.points.append(P(role: "min", flops: 5, acc1: 1))
        do { _ = try RunComparison(runs: [twice]); Issue.record("a doubled role accepted") } catch { #expect(error.description.contains("twice")) }
        do { _ = try RunComparison(runs: [.init(arm: "a", points: [P(role: nil, flops: 1, acc1: 2)])]); Issue.record("no roles accepted") } catch { #expect(error.description.contains("role")) }
    }

    @Test func markdownTableHasARowPerArmAndTheNoiseLevel() throws {
        let c = try RunComparison(runs: [run("alpha", min: 80, mid: 84, max: 90), run("alpha", min: 82, mid: 86, max: 90), run("kl", min: 70, mid: 75, max: 88)])
        let md = c.markdown(title: "T")
        let lines = md.split(separator: "\n").map(String.init)
        #expect(lines[0] == "### T")
        #expect(lines[1] == "| arm | runs | min (5.0 MFLOPs) | mid1 (15.0 MFLOPs) | max (30.0 MFLOPs) | front HV |")
        #expect(lines[3].hasPrefix("| alpha | 2 | 81.00 ± 1.41 | 85.00 ± 1.41 | 90.00 ± 0.00 | "))
        #expect(lines[4].hasPrefix("| kl | 1 | 70.00 ± 0.00 | 75.00 ± 0.00 | 88.00 ± 0.00 | "))
        #expect(md.contains("binomial standard error is 0.37 points"))
    }
}
