import FileFormats
import Supernet
import System

/// A saved search (`--state FILE`): its settings, its space and every result
/// so far, in evaluation order. Written after each generation; a search
/// started with the same file replays the results (see `EvolutionarySearch`)
/// and continues. The budget is not part of the settings: a finished search
/// can be resumed with a larger one.
///
///     {"format": "evo-search-state", "version": 1,
///      "settings": {"algorithm": "front", "seed": 0, "flops_min": 200, ...},
///      "budget": 1000, "space": {...},
///      "results": [{arch line with flops, params, acc1, ...}, ...]}
public struct SearchState: Sendable {
    public static let format = "evo-search-state"
    public static let version: Int64 = 1

    public var settings: SearchSettings
    public var budget: Int
    public var space: JSONValue
    public var results: [JSONValue]

    public init(settings: SearchSettings, budget: Int, space: JSONValue, results: [JSONValue]) {
        self.settings = settings
        self.budget = budget
        self.space = space
        self.results = results
    }

    static func settingsJSON(_ s: SearchSettings) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("algorithm", .string(s.algorithm.rawValue)),
            ("seed", .int(Int64(bitPattern: s.seed))),
            ("flops_min", .double(s.bounds.min)),
            ("flops_max", .double(s.bounds.max)),
        ]
        if case let .latency(table) = s.objective {
            // The bounds are then milliseconds; the table decides every cost.
            pairs += [("objective", .string("latency")), ("latency_table", table.json)]
        }
        if s.algorithm == .official {
            pairs += [("population", JSONValue(s.population)), ("mutate", JSONValue(s.mutate)),
                      ("crossover", JSONValue(s.crossover)), ("mutate_prob", .double(s.mutateProb)), ("step", .double(s.step))]
        }
        return .object(pairs)
    }

    /// The file's text: the header keys, then one result per line.
    public var text: String {
        var out = "{\"format\":\"\(Self.format)\",\"version\":\(Self.version),\n"
        out += "\"settings\":\(Self.settingsJSON(settings).jsonText),\n"
        out += "\"budget\":\(budget),\n\"space\":\(space.jsonText),\n\"results\":["
        for (i, r) in results.enumerated() {
            out += i == 0 ? "\n" : ",\n"
            r.write(to: &out)
        }
        out += "\n]}\n"
        return out
    }

    /// Reads a state file's JSON; the message names the problem.
    public init(json: JSONValue) throws(SearchFailure) {
        guard json["format"]?.stringValue == Self.format else {
            throw SearchFailure(message: "not an evo-search state (no \"format\": \"\(Self.format)\")")
        }
        guard json["version"]?.intValue == Self.version else {
            throw SearchFailure(message: "state version \(json["version"]?.jsonText ?? "missing"); this evo-search reads version \(Self.version)")
        }
        guard let s = json["settings"], let name = s["algorithm"]?.stringValue, let kind = SearchAlgorithmKind(rawValue: name),
              let seed = s["seed"]?.intValue, let lo = s["flops_min"]?.doubleValue, let hi = s["flops_max"]?.doubleValue, lo <= hi
        else { throw SearchFailure(message: "malformed settings in the state") }
        var settings = SearchSettings(algorithm: kind, seed: UInt64(bitPattern: seed), bounds: FlopsBounds(min: lo, max: hi))
        if kind == .official {
            guard let p = s["population"]?.intValue, let m = s["mutate"]?.intValue, let c = s["crossover"]?.intValue,
                  let mp = s["mutate_prob"]?.doubleValue, let st = s["step"]?.doubleValue
            else { throw SearchFailure(message: "malformed official settings in the state") }
            settings.population = Int(p)
            settings.mutate = Int(m)
            settings.crossover = Int(c)
            settings.mutateProb = mp
            settings.step = st
        }
        if let objective = s["objective"] {
            guard objective.stringValue == "latency", let t = s["latency_table"] else { throw SearchFailure(message: "malformed objective in the state") }
            do { settings.objective = .latency(try LatencyTable(json: t)) } catch {
                throw SearchFailure(message: "the state's latency table is malformed: \(error)")
            }
        }
        guard let results = json["results"]?.arrayValue else { throw SearchFailure(message: "the state has no results list") }
        self.init(settings: settings, budget: Int(json["budget"]?.intValue ?? 0), space: json["space"] ?? .null, results: results)
    }

    /// Why a search with `settings` on `space` cannot resume this state, or nil.
    public func mismatch(settings other: SearchSettings, space otherSpace: JSONValue) -> String? {
        if space != otherSpace { return "the search space differs" }
        let a = Self.settingsJSON(settings), b = Self.settingsJSON(other)
        guard let pa = a.objectValue, let pb = b.objectValue else { return nil }
        if a["objective"] != b["objective"] {
            // The bounds are in other units then: name the cause, not a bound.
            return "objective \(a["objective"]?.stringValue ?? "flops") in the state, \(b["objective"]?.stringValue ?? "flops") asked"
        }
        for (k, v) in pa where b[k] != v {
            if k == "latency_table" { return "the latency table differs from the state's" }
            return "\(k) is \(v.jsonText) in the state, \(b[k]?.jsonText ?? "unset") asked"
        }
        if let (k, v) = pb.first(where: { a[$0.0] == nil }) {
            return "\(k) is \(k == "latency_table" ? "a table" : v.jsonText) asked, unset in the state"
        }
        return nil
    }
}
