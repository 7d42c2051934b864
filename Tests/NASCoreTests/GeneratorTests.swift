import Foundation
import Testing
@testable import NASCore
import TestSupport

/// `generator_checksums.json` (GENERATOR.md): every state_dict entry of both spaces.
private struct GeneratorChecksums: Decodable {
    struct Entry: Decodable {
        var shape: [Int]
        var rule: String
        var lo: Double?
        var hi: Double?
        var sum: Double?
        var first4: [Double]?
        var last: Double?
    }

    struct Space: Decodable {
        var n_classes: Int
        var n_entries: Int
        var n_float_values: Int
        var state_dict: [String: Entry]
    }

    var spaces: [String: Space]
    var inputs: [String: Entry]
    var labels: [String: [Int]]
}

/// The exactly rounded binary64 sum of binary32 values (what `math.fsum` gives).
///
/// Every Float is `m * 2^e` with an integer `|m| < 2^24`; the sum is kept as an
/// Int128 count of 2^-100 units, which is exact for values in [2^-77, 4)
/// (smaller non-zero values are counted in `inexact`; the tests require none)
/// and cannot overflow for fewer than 2^24 values of magnitude < 4 per call
/// (4 * 2^100 * 2^24 = 2^126 < 2^127).
private struct ExactFloatSum {
    private var units: Int128 = 0   // the sum in units of 2^-100
    private(set) var inexact = 0
    private(set) var count = 0

    mutating func add(_ v: Float) {
        precondition(abs(v) < 4 && count < 1 << 24, "ExactFloatSum range exceeded")
        count += 1
        guard v != 0 else { return }
        let m = Int128(v.significandBitPattern | (v.isNormal ? 1 << 23 : 0))
        let shift = Int(v.exponent) - 23 + 100   // v = m * 2^(exponent - 23)
        guard shift >= 0 else { inexact += 1; return }
        units += v.sign == .minus ? -(m << shift) : m << shift
    }

    /// Correctly rounded binary64 value of the exact sum (the Int128 to
    /// Double conversion rounds to nearest even; scaling by 2^-100 is exact).
    var value: Double { Double(units) * 0x1p-100 }
}

@Suite("Reference generator")
struct GeneratorTests {
    @Test func hashTestVectors() {
        #expect(ReferenceGenerator.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(ReferenceGenerator.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(ReferenceGenerator.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        #expect(ReferenceGenerator.fnv1a64("input") == 0x1ebb_ae8f_5810_b65b)
        #expect(ReferenceGenerator.fnv1a64("label") == 0x39f7_fcec_8fcb_623d)
        // splitmix64 as GENERATOR.md writes it: the gamma is added inside.
        #expect(ReferenceGenerator.splitmix64(0) == 0xe220_a839_7b1d_cdaf)
        #expect(ReferenceGenerator.splitmix64(0x9e37_79b9_7f4a_7c15) == 0x6e78_9e6a_a1b9_65f4)
    }

    @Test func inputTestVectors() {
        let expectedMix: [UInt64] = [0x190a_9f76_a9bd_8bf6, 0x25c1_2863_d0b8_abeb, 0x92f7_32ca_a1d8_e699, 0xda4c_5ec8_b35d_6537]
        let expectedU = [0.09781831502914429, 0.14747858047485352, 0.5740844011306763, 0.8527277708053589]
        let expectedValue: [Float] = [-1.6087267398834229, -1.410085678100586, 0.2963376045227051, 1.4109110832214355]
        let h = ReferenceGenerator.fnv1a64("input")
        let input = ReferenceGenerator.input(batch: 1, resolution: 2)
        for k in 0 ..< 4 {
            #expect(ReferenceGenerator.splitmix64(h &+ UInt64(k)) == expectedMix[k])
            #expect(ReferenceGenerator.unit(name: "input", index: k) == expectedU[k])
            #expect(input[k] == expectedValue[k])
        }
        // A smaller batch is a prefix of a larger one.
        let two = ReferenceGenerator.input(batch: 2, resolution: 4)
        let three = ReferenceGenerator.input(batch: 3, resolution: 4)
        #expect(Array(three.prefix(two.count)) == two)
    }

    @Test func labelTestVectors() {
        #expect(ReferenceGenerator.labels(count: 8, classes: 10) == [9, 6, 6, 0, 7, 4, 4, 8])
        #expect(ReferenceGenerator.labels(count: 8, classes: 1000) == [983, 694, 669, 78, 797, 404, 466, 816])
    }

    @Test func officialSpaceTestVectors() throws {
        let cases: [(String, [Int], Double, [Float])] = [
            ("first_conv.conv.conv.weight", [24, 3, 3, 3], 0.2041241452319315,
             [-0.07515134662389755, -0.017651468515396118, 0.1337011158466339]),
            ("blocks.0.mobile_inverted_conv.depth_conv.conv.conv.weight", [24, 1, 5, 5], 0.12247448713915891,
             [0.0778425931930542, 0.06566012650728226, 0.07240071147680283]),
            ("classifier.linear.linear.weight", [1000, 1984], 0.06735198826004059,
             [-0.055226072669029236, 0.005517043173313141, 0.041917335242033005]),
        ]
        for (name, shape, a, first) in cases {
            #expect(try ReferenceGenerator.rule(name: name, shape: shape).rule == .uniform(lo: -a, hi: a))
            let n = shape.reduce(1, *)
            #expect(Array(ReferenceGenerator.values(name: name, count: 3, lo: -a, hi: a)) == first, "\(name)")
            #expect(try ReferenceGenerator.tensor(name: name, shape: shape).count == n)
        }
        let variance = try ReferenceGenerator.tensor(name: "first_conv.bn.bn.running_var", shape: [24])
        #expect(Array(variance.prefix(3)) == [1.1031396389007568, 0.9680641889572144, 1.0743862390518188])
    }

    @Test func unknownNamesThrow() {
        #expect(throws: ReferenceGeneratorError.self) { try ReferenceGenerator.tensor(name: "blocks.0.foo", shape: [3]) }
        #expect(throws: ReferenceGeneratorError.self) { try ReferenceGenerator.tensor(name: "x.weight", shape: [2, 2, 2]) }
        #expect(throws: Never.self) { try ReferenceGenerator.tensor(name: "a.bn.bn.num_batches_tracked", shape: []) }
    }

    /// Every state_dict entry of one space in `generator_checksums.json`: rule
    /// name, lo/hi (exact), the first 4 and the last value (exact), and the sum
    /// of all values (exact: the correctly rounded binary64 sum, like `math.fsum`).
    @Test(.requires(.referenceData), arguments: ["official", "tiny"])
    func checksumsOfEveryEntry(space spaceName: String) throws {
        let file = try ReferenceFiles.decodeReference(GeneratorChecksums.self, file: "generator_checksums.json")
        let space = try #require(file.spaces[spaceName])
        #expect(space.state_dict.count == space.n_entries)
        var scratch = [Float]()
        var floatValues = 0
        for (name, entry) in space.state_dict {
            floatValues += try check(name: name, entry: entry, scratch: &scratch, context: spaceName)
        }
        #expect(floatValues == space.n_float_values)
    }

    @Test(.requires(.referenceData))
    func checksumsOfInputsAndLabels() throws {
        let file = try ReferenceFiles.decodeReference(GeneratorChecksums.self, file: "generator_checksums.json")
        #expect(file.inputs.count == 4 && file.labels.count == 2)
        for (key, entry) in file.inputs {
            #expect(entry.rule == "input")
            #expect(entry.shape.count == 4 && entry.shape[1] == 3 && entry.shape[2] == entry.shape[3])
            let values = ReferenceGenerator.input(batch: entry.shape[0], resolution: entry.shape[2])
            try checkValues(values, entry: entry, context: key)
        }
        for (key, expected) in file.labels {
            // keys look like "n_classes=10, i=0..15"
            let classes = try #require(Int(key.split(separator: ",")[0].dropFirst("n_classes=".count)))
            #expect(ReferenceGenerator.labels(count: expected.count, classes: classes).map(Int.init) == expected, "\(key)")
        }
    }

    /// Returns the number of float values checked.
    private func check(name: String, entry: GeneratorChecksums.Entry, scratch: inout [Float], context: String) throws -> Int {
        let (rule, ruleName) = try ReferenceGenerator.rule(name: name, shape: entry.shape)
        #expect(ruleName == entry.rule, "\(context) \(name)")
        switch rule {
        case .integerZero:
            return 0
        case .uniform(let lo, let hi):
            #expect(lo == entry.lo && hi == entry.hi, "\(context) \(name)")
            let count = entry.shape.reduce(1, *)
            if scratch.count < count { scratch = [Float](repeating: 0, count: count) }
            scratch.withUnsafeMutableBufferPointer { buffer in
                ReferenceGenerator.fill(UnsafeMutableBufferPointer(rebasing: buffer[0 ..< count]), name: name, lo: lo, hi: hi)
            }
            try checkValues(scratch[0 ..< count], entry: entry, context: "\(context) \(name)")
            return count
        }
    }

    private func checkValues(_ values: some BidirectionalCollection<Float>, entry: GeneratorChecksums.Entry, context: String) throws {
        let first4 = try #require(entry.first4)
        #expect(values.prefix(4).map(Double.init) == first4, "\(context)")
        #expect(values.last.map(Double.init) == entry.last, "\(context)")
        var sum = ExactFloatSum()
        for v in values { sum.add(v) }
        #expect(sum.inexact == 0, "\(context)")
        #expect(sum.value == entry.sum, "\(context)")
    }
}
