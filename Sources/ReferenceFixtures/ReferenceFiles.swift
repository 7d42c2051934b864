import Foundation

/// The official reference files (../shared/reference) and the error measures the
/// tests compare against them with; shared by every test target.
public enum ReferenceFiles {
    /// The folder holding the official reference files (`losses.json`,
    /// `generator_checksums.json`, ...): `$ALPHANET_REFERENCE_DIR`, else
    /// `shared/reference` in the package root, else `/work/shared/reference`.
    public static let referenceDirectory: URL? = {
        var candidates: [URL] = []
        if let env = ProcessInfo.processInfo.environment["ALPHANET_REFERENCE_DIR"] {
            candidates.append(URL(fileURLWithPath: env))
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent("shared/reference"))
        candidates.append(URL(fileURLWithPath: "/work/shared/reference"))
        return candidates.first {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("GENERATOR.md").path)
        }
    }()

    public static var referenceFilesAvailable: Bool { referenceDirectory != nil }

    public struct MissingReference: Error, CustomStringConvertible {
        public var file: String
        public var description: String { "reference file \(file) not found (set ALPHANET_REFERENCE_DIR)" }
    }

    public static func decodeReference<T: Decodable>(_ type: T.Type, file: String) throws -> T {
        guard let dir = referenceDirectory else { throw MissingReference(file: file) }
        let data = try Data(contentsOf: dir.appendingPathComponent(file))
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
