/// A JSON value that keeps the order of object keys and the integer/float
/// distinction of numbers, so a filter can rewrite one key of a line and write
/// every other key back as it came (like jq).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Keys in input order; a key appears at most once (the parser keeps the last).
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.int(a), .double(b)), let (.double(b), .int(a)): return Double(a) == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (k, v) in a {
                guard let w = rhs[k], w == v else { return false }
            }
            return true
        default: return false
        }
    }
}

extension JSONValue {
    /// The value under `key` of an object, nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        get {
            guard case let .object(pairs) = self else { return nil }
            return pairs.last(where: { $0.0 == key })?.1
        }
        set {
            guard case var .object(pairs) = self else { return }
            if let i = pairs.firstIndex(where: { $0.0 == key }) {
                if let v = newValue { pairs[i].1 = v } else { pairs.remove(at: i) }
            } else if let v = newValue {
                pairs.append((key, v))
            }
            self = .object(pairs)
        }
    }

    public var intValue: Int64? {
        switch self {
        case let .int(v): return v
        case let .double(d) where d.rounded() == d && abs(d) < 9e15: return Int64(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case let .int(v): return Double(v)
        case let .double(d): return d
        default: return nil
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case let .array(a) = self { return a }
        return nil
    }

    public var objectValue: [(String, JSONValue)]? {
        if case let .object(o) = self { return o }
        return nil
    }

    /// A short name of the value's kind for error messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue {
    public init(_ ints: [Int]) { self = .array(ints.map { .int(Int64($0)) }) }
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: Double) { self = .double(value) }
    public init(_ value: String) { self = .string(value) }
}

extension JSONValue {
    /// A copy with `key` set (kept in place if present, appended otherwise).
    public func with(_ key: String, _ value: JSONValue) -> JSONValue {
        var out = self
        out[key] = value
        return out
    }
}

extension Double {
    /// Rounded to `digits` decimal places, for tidy JSON (flops 203.4152).
    public func roundedTo(_ digits: Int) -> Double {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
