extension JSONValue {
    /// Compact JSON text on one line (`{"a":1,"b":[1,2]}`), keys in stored order.
    /// Doubles print as the shortest text that reads back to the same value;
    /// non-finite doubles, which JSON cannot hold, print as null.
    public var jsonText: String {
        var out = ""
        out.reserveCapacity(128)
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            if !d.isFinite {
                out += "null"
            } else if d == d.rounded(), abs(d) < 1e15 {
                // Keep a float a float: 3.0 prints as 3.0, not 3.
                out += String(Int64(d)) + ".0"
            } else {
                out += "\(d)"
            }
        case let .string(s): JSONValue.writeString(s, to: &out)
        case let .array(items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case let .object(pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, to: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// Indented multi-line text for files a person reads (predictors, index.json).
    public func prettyText(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case let .array(items) where !items.isEmpty:
            if items.allSatisfy({ if case .array = $0 { return false }; if case .object = $0 { return false }; return true }) {
                return jsonText
            }
            return "[\n" + items.map { inner + $0.prettyText(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case let .object(pairs) where !pairs.isEmpty:
            return "{\n" + pairs.map { (k, v) in
                var key = ""
                JSONValue.writeString(k, to: &key)
                return inner + key + ": " + v.prettyText(indent: inner)
            }.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return jsonText
        }
    }
}
