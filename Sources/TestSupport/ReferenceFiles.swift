import Foundation

/// The official reference files (../shared/reference) and the error measures the
/// tests compare against them with; shared by every test target.
public enum ReferenceFiles {
    /// The folder of the official reference files (`losses.json`,
    /// `generator_checksums.json`, ...): `$ALPHANET_REFERENCE_DIR`, else
    /// ../shared/reference beside the repository. Tests that read it carry
    /// `.requires(.referenceData)`.
    public static var referenceDirectory: URL { URL(fileURLWithPath: Paths.reference) }

    public static func decodeReference<T: Decodable>(_ type: T.Type, file: String) throws -> T {
        let data = try Data(contentsOf: referenceDirectory.appendingPathComponent(file))
        return try JSONDecoder().decode(type, from: data)
    }

    /// Relative error of a tensor: `max_i |ours_i - ref_i| / max(max_i |ref_i|, floor)`.
    /// `floor` keeps the measure meaningful where the reference vanishes
    /// mathematically and only holds rounding noise.
    public static func relativeError<T: BinaryFloatingPoint>(_ ours: [T], _ reference: [Double], floor: Double = 0) -> Double {
        precondition(ours.count == reference.count, "length mismatch \(ours.count) vs \(reference.count)")
        var maxDiff = 0.0
        var maxRef = 0.0
        for (a, b) in zip(ours, reference) {
            let d = abs(Double(a) - b)
            // NaN must fail: a comparison with NaN is false, so test the negation.
            if !(d <= maxDiff) { maxDiff = d.isNaN ? .infinity : d }
            maxRef = max(maxRef, abs(b))
        }
        let denominator = max(maxRef, floor)
        return denominator == 0 ? maxDiff : maxDiff / denominator
    }

    /// Relative error of a scalar, `|ours - ref| / max(|ref|, floor)`.
    public static func relativeError<T: BinaryFloatingPoint>(_ ours: T, _ reference: Double, floor: Double = 0) -> Double {
        relativeError([ours], [reference], floor: floor)
    }
}
