import FileFormats
import NASCore
import System
@testable import Supernet
import Testing
import TestSupport

@Suite("Latency table")
struct LatencyTableTests {
    let space: SearchSpace
    init() throws { space = try SearchSpace(contentsOf: Paths.space("tiny")) }

    /// Segments: the stem, each block, the head, in the order the timed forward gives them;
    /// their MFLOPs add up to the official count but for the classifier's bias-free share.
    @Test func segmentsFollowTheForwardPass() {
        for arch in [space.minArch, space.maxArch] {
            let segs = LatencyTable.segments(of: arch, in: space)
            let blocks = arch.blocks(in: space)
            #expect(segs.count == blocks.count + 2 && segs.first?.kind == "stem" && segs.last?.kind == "head")
            #expect(segs.first?.key == "stem r\(arch.resolution) c\(arch.width[0])")
            let total = segs.reduce(0) { $0 + $1.mflops }
            #expect(abs(total - arch.flops(in: space)) < 1e-3 * arch.flops(in: space), "\(total) vs \(arch.flops(in: space))")
            let model = Supernet(weights: SupernetInitializer.initialWeights(space: space, seed: 1), space: space, context: ComputeContext(workers: 1))
            let r = arch.resolution
            let input = [Float](repeating: 0.1, count: 2 * r * r * 3)
            let ns = input.withUnsafeBufferPointer { model.segmentNanoseconds(arch: arch, input: $0, shape: Shape4(n: 2, h: r, w: r, c: 3)) }
            #expect(ns.count == segs.count && ns.allSatisfy { $0 > 0 })
            // The boundaries: the stem ends with its BN, every block with its residual add,
            // and each block starts with its expansion or depthwise conv, the head with the
            // final expand conv.
            let ops = model.tape.ops, starts = model.tape.segmentStarts
            #expect(starts.count == blocks.count + 1)
            for (k, start) in starts.enumerated() {
                #expect(ops[start - 1].kind == (k == 0 ? "batchNorm" : "add"), "segment \(k + 1) starts after \(ops[start - 1].kind)")
                #expect(["pointwise", "depthwise"].contains(ops[start].kind), "segment \(k + 1) starts with \(ops[start].kind)")
            }
        }
    }

    @Test func predictionSumsEntriesAndFitsTheRest() throws {
        let arch = space.minArch
        let segs = LatencyTable.segments(of: arch, in: space)
        var table = LatencyTable(batch: 1, threads: 1, overheadMs: 0.5)
        for (i, s) in segs.enumerated() { table.entries[s.key] = .init(ms: Double(i + 1), mflops: s.mflops, samples: 1) }
        let p = table.predict(arch, in: space)
        #expect(p.measuredSegments == segs.count && p.segments == segs.count)
        #expect(abs(p.ms - (0.5 + Double(segs.count * (segs.count + 1) / 2))) < 1e-12)
        // The max arch's segments are mostly unseen: fitted, positive, and counted as such.
        let q = table.predict(space.maxArch, in: space)
        #expect(q.measuredSegments < q.segments && q.ms > 0.5 && q.ms.isFinite)
        // The fit of a kind is least squares on MFLOPs: two block entries on a line.
        var line = LatencyTable(batch: 1, threads: 1)
        line.entries["block s1 in16 c8-24-16 k3 s1"] = .init(ms: 3, mflops: 1, samples: 1)
        line.entries["block s1 in16 c8-48-16 k3 s1"] = .init(ms: 5, mflops: 2, samples: 1)
        let f = try #require(line.fit("block s1"))
        #expect(abs(f.a - 1) < 1e-12 && abs(f.b - 2) < 1e-12)
        // The file round-trips; a wrong format or a bad entry is bad data.
        #expect(try LatencyTable(json: table.json) == table)
        #expect(throws: Failure.self) { try LatencyTable(json: .object([("format", .string("other"))])) }
        var bad = table.json
        bad["entries"] = .object([("stem r1 c1", .object([("ms", .double(-1)), ("mflops", .double(1)), ("samples", JSONValue(1))]))])
        #expect { try LatencyTable(json: bad) } throws: { "\($0)".contains("stem r1 c1") }
    }
}
