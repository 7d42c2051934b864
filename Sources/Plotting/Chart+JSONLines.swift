import FileFormats

/// Building charts from parsed arch JSON lines (FileFormats.JSONValue).
extension Chart {
    /// The number under `key` of a line: a JSON number, or nil.
    public static func number(_ line: JSONValue, _ key: String) -> Double? {
        line[key]?.doubleValue
    }

    /// The Pareto picture: `sampled` as dots, `front` as a line in order of
    /// x, and the sampled lines with the smallest and the largest x marked as
    /// "min subnet" and "max subnet" (sample-subnets --min --max writes the
    /// min and max subnets, which have the fewest and the most FLOPs). Lines
    /// without a number under xKey or yKey are skipped.
    public static func pareto(sampled: [JSONValue], front: [JSONValue], xKey: String, yKey: String,
                              title: String, xLabel: String, yLabel: String) -> Chart {
        func points(_ lines: [JSONValue]) -> [Point] {
            lines.compactMap { l in number(l, xKey).flatMap { x in number(l, yKey).map { Point(x: x, y: $0) } } }
        }
        let dots = points(sampled)
        var line = points(front)
        line.sort { $0.x < $1.x }
        var chart = Chart(title: title, xLabel: xLabel, yLabel: yLabel)
        if !dots.isEmpty {
            chart.series.append(Series(name: "sampled subnets (\(dots.count))", style: .points(radius: 3.5), color: Palette.color(0), points: dots))
        }
        if !line.isEmpty {
            chart.series.append(Series(name: "searched front (\(line.count))", style: .line(width: 2.5), color: Palette.color(3), points: line))
        }
        if let lo = dots.min(by: { $0.x < $1.x }), let hi = dots.max(by: { $0.x < $1.x }) {
            var marks = [Point(x: lo.x, y: lo.y, label: "min subnet")]
            if hi != lo { marks.append(Point(x: hi.x, y: hi.y, label: "max subnet")) }
            chart.series.append(Series(name: "min / max subnet", style: .markers, color: Palette.color(2), points: marks))
        }
        return chart
    }

    /// The history picture: one line per model (lines with equal `groupKey`
    /// values, in file order), coloured by the value of `colorKey` (e.g. the
    /// set a model belongs to, "pareto" or "sample"), one legend row per
    /// colour. Each line's points are sorted by x.
    public static func history(_ lines: [JSONValue], xKey: String, yKey: String, groupKey: String, colorKey: String,
                               title: String, xLabel: String, yLabel: String) -> Chart {
        var groups: [String: [Point]] = [:], groupOrder: [String] = [], groupColor: [String: String] = [:]
        var colorOrder: [String] = []
        for l in lines {
            guard let x = number(l, xKey), let y = number(l, yKey) else { continue }
            let g = l[groupKey].map { $0.stringValue ?? $0.jsonText } ?? "?"
            let c = l[colorKey].map { $0.stringValue ?? $0.jsonText } ?? ""
            if groups[g] == nil { groupOrder.append(g); groupColor[g] = c }
            if !colorOrder.contains(c) { colorOrder.append(c) }
            groups[g, default: []].append(Point(x: x, y: y))
        }
        var chart = Chart(title: title, xLabel: xLabel, yLabel: yLabel)
        var named = Set<String>()
        for g in groupOrder {
            let c = groupColor[g] ?? ""
            let index = colorOrder.firstIndex(of: c) ?? 0
            let name = named.insert(c).inserted ? (c.isEmpty ? "models" : c) : ""
            chart.series.append(Series(name: name, style: .line(width: 1.5), color: Palette.color(index),
                                       points: (groups[g] ?? []).sorted { $0.x < $1.x }))
        }
        return chart
    }
}
