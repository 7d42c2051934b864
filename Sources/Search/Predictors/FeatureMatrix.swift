import FileFormats
import System

/// A dense row-major matrix of features: `rows` samples of `columns` values,
/// sample `i` at `values[i * columns ..< (i + 1) * columns]`.
public struct FeatureMatrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public private(set) var values: [Double]

    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(rows >= 0 && columns >= 0 && values.count == rows * columns, "FeatureMatrix: \(values.count) values for \(rows) x \(columns)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// Rows given as arrays of equal length (`columns` is taken from the first; 0 when empty).
    public init(_ rows: [[Double]]) {
        let c = rows.first?.count ?? 0
        precondition(rows.allSatisfy { $0.count == c }, "FeatureMatrix: rows of different lengths")
        self.init(rows: rows.count, columns: c, values: rows.flatMap { $0 })
    }

    public subscript(row: Int, column: Int) -> Double {
        values[row * columns + column]
    }

    public func row(_ i: Int) -> ArraySlice<Double> {
        values[(i * columns)..<((i + 1) * columns)]
    }

    /// Per column: the mean, the population standard deviation, and whether the column
    /// varies (sd above 1e-12 of its magnitude); what the linear models standardise with.
    public func columnMoments() -> (mean: [Double], sd: [Double], varies: [Bool]) {
        let n = Double(rows)
        var mean = [Double](repeating: 0, count: columns), sd = [Double](repeating: 0, count: columns)
        for c in 0..<columns {
            var s = 0.0
            for r in 0..<rows { s += self[r, c] }
            mean[c] = s / n
            var v = 0.0
            for r in 0..<rows { v += (self[r, c] - mean[c]) * (self[r, c] - mean[c]) }
            sd[c] = (v / n).squareRoot()
        }
        let varies = (0..<columns).map { sd[$0] > 1e-12 * max(1, abs(mean[$0])) }
        return (mean, sd, varies)
    }

    /// The rows at `indices`, in that order.
    public func selecting(rows indices: [Int]) -> FeatureMatrix {
        var out: [Double] = []
        out.reserveCapacity(indices.count * columns)
        for i in indices { out.append(contentsOf: row(i)) }
        return FeatureMatrix(rows: indices.count, columns: columns, values: out)
    }
}

/// A feature read from a JSON line: the number under `key`, or element
/// `index` of the integer list under `key` (written `key[index]`).
public struct FeatureName: Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var index: Int?

    public init(key: String, index: Int? = nil) {
        self.key = key
        self.index = index
    }

    /// Parses `"width[3]"` or `"flops"`; nil for malformed text.
    public init?(_ text: String) {
        if let open = text.firstIndex(of: "["), text.hasSuffix("]") {
            let key = String(text[..<open])
            let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
            guard !key.isEmpty, let i = Int(inner), i >= 0 else { return nil }
            self.init(key: key, index: i)
        } else {
            guard !text.isEmpty, !text.contains("["), !text.contains("]") else { return nil }
            self.init(key: text)
        }
    }

    public var description: String { index.map { "\(key)[\($0)]" } ?? key }

    /// The official accuracy-predictor encoding of AttentiveNAS (31 numbers):
    /// resolution, width[0..8], depth[0..6], kernel_size[0..6], expand_ratio[0..6].
    public static let official: [FeatureName] =
        [FeatureName(key: "resolution")]
        + (0..<9).map { FeatureName(key: "width", index: $0) }
        + (0..<7).map { FeatureName(key: "depth", index: $0) }
        + (0..<7).map { FeatureName(key: "kernel_size", index: $0) }
        + (0..<7).map { FeatureName(key: "expand_ratio", index: $0) }
}

/// Why a line's features or target could not be read; `field` names the key.
public typealias FeatureError = FieldError

extension FeatureName {
    /// This feature's value in `line`: a finite number (or list element).
    public func value(in line: JSONValue) throws(FeatureError) -> Double {
        guard let v = line[key] else { throw FeatureError(field: key, message: "missing") }
        if let index {
            guard let a = v.arrayValue else { throw FeatureError(field: key, message: "expected a list of numbers, found \(v.kindName)") }
            guard index < a.count else { throw FeatureError(field: key, message: "expected at least \(index + 1) numbers, found \(a.count)") }
            guard let d = a[index].doubleValue, d.isFinite else { throw FeatureError(field: description, message: "expected a number, found \(a[index].kindName)") }
            return d
        }
        guard let d = v.doubleValue, d.isFinite else { throw FeatureError(field: key, message: "expected a number, found \(v.kindName)") }
        return d
    }
}

extension Array where Element == FeatureName {
    /// The features of `line` in this order, appended to `out`.
    public func values(in line: JSONValue, appendingTo out: inout [Double]) throws(FeatureError) {
        for f in self { out.append(try f.value(in: line)) }
    }
}
