import FileFormats

/// Building charts from parsed arch JSON lines (FileFormats.JSONValue).
extension Chart {
    /// The number under `key` of a line: a JSON number, or nil.
    public static func number(_ line: JSONValue, _ key: String) -> Double? {
        line[key]?.doubleValue
    }

    /// Half the 95% interval of an accuracy in percent measured on `val_images`
    /// images (normal approximation to the binomial, 1.96 sd); 0 without both numbers.
    public static func interval95(_ line: JSONValue, _ key: String) -> Double {
        guard let a = number(line, key), let n = number(line, "val_images"), n > 0, (0...100).contains(a) else { return 0 }
        let p = a / 100
        return 100 * 1.96 * (p * (1 - p) / n).squareRoot()
    }

    /// The Pareto picture: `sampled` as dots, `searched` (e.g. the searched archs as
    /// re-measured) as rings, `front` as a line in order of x, and the sampled lines with
    /// the smallest and the largest x marked as "min subnet" and "max subnet"
    /// (sample-subnets --min --max writes the min and max subnets, which have the fewest
    /// and the most FLOPs; marked only when x is `flops`). The front and the marks carry error bars: the 95% interval
    /// of each accuracy from its `val_images` (none where a line lacks it). Lines
    /// without a number under xKey or yKey are skipped.
    public static func pareto(sampled: [JSONValue], front: [JSONValue], searched: [JSONValue] = [], xKey: String, yKey: String,
                              title: String, xLabel: String, yLabel: String) -> Chart {
        func points(_ lines: [JSONValue], errors: Bool) -> [Point] {
            lines.compactMap { l in
                number(l, xKey).flatMap { x in number(l, yKey).map { Point(x: x, y: $0, yError: errors ? interval95(l, yKey) : 0) } }
            }
        }
        let dots = points(sampled, errors: true)
        var line = points(front, errors: true)
        line.sort { $0.x < $1.x }
        let rings = points(searched, errors: false)
        let bars = line.contains { $0.yError > 0 } ? ", bars: 95% intervals" : ""
        var chart = Chart(title: title, xLabel: xLabel, yLabel: yLabel)
        if !dots.isEmpty {
            chart.series.append(Series(name: "sampled subnets (\(dots.count))", style: .points(radius: 3.5), color: Palette.color(0),
                                       points: dots.map { var p = $0; p.yError = 0; return p }))
        }
        if !rings.isEmpty {
            chart.series.append(Series(name: "searched archs, measured (\(rings.count))", style: .rings(radius: 4.5), color: Palette.color(1), points: rings))
        }
        if !line.isEmpty {
            chart.series.append(Series(name: "front (\(line.count)\(bars))", style: .line(width: 2.5), color: Palette.color(3), points: line))
        }
        // The fewest and the most FLOPs are the min and max subnets; on another x axis
        // (stand-alone accuracy, say) the ends mean nothing of the kind.
        if xKey == "flops", let lo = dots.min(by: { $0.x < $1.x }), let hi = dots.max(by: { $0.x < $1.x }) {
            var marks = [Point(x: lo.x, y: lo.y, label: "min subnet", yError: lo.yError)]
            if hi != lo { marks.append(Point(x: hi.x, y: hi.y, label: "max subnet", yError: hi.yError)) }
            chart.series.append(Series(name: "min / max subnet", style: .markers, color: Palette.color(2), points: marks))
        }
        return chart
    }

    /// The history picture: one line per model (lines with equal `groupKey`
    /// values, in file order), coloured by the value of `colorKey` (e.g. the
    /// set a model belongs to, "pareto" or "sample"), one legend row per
    /// colour. Each line's points are sorted by x, with error bars of half-length
    /// the number under `yErrorKey` where given. `scatter`: the points as dots, not
    /// joined (for one measure against another, where x has no order to follow).
    public static func history(_ lines: [JSONValue], xKey: String, yKey: String, groupKey: String, colorKey: String,
                               yErrorKey: String? = nil, scatter: Bool = false, title: String, xLabel: String, yLabel: String) -> Chart {
        var groups: [String: [Point]] = [:], groupOrder: [String] = [], groupColor: [String: String] = [:]
        var colorOrder: [String] = []
        for l in lines {
            guard let x = number(l, xKey), let y = number(l, yKey) else { continue }
            let g = l[groupKey].map { $0.stringValue ?? $0.jsonText } ?? "?"
            let c = l[colorKey].map { $0.stringValue ?? $0.jsonText } ?? ""
            if groups[g] == nil { groupOrder.append(g); groupColor[g] = c }
            if !colorOrder.contains(c) { colorOrder.append(c) }
            let e = yErrorKey.flatMap { number(l, $0) }.map { Swift.max(0, $0) } ?? 0
            groups[g, default: []].append(Point(x: x, y: y, yError: e))
        }
        var chart = Chart(title: title, xLabel: xLabel, yLabel: yLabel)
        var named = Set<String>()
        for g in groupOrder {
            let c = groupColor[g] ?? ""
            let index = colorOrder.firstIndex(of: c) ?? 0
            let name = named.insert(c).inserted ? (c.isEmpty ? "models" : c) : ""
            chart.series.append(Series(name: name, style: scatter ? .points(radius: 4.5) : .line(width: 1.5), color: Palette.color(index),
                                       points: (groups[g] ?? []).sorted { $0.x < $1.x }))
        }
        return chart
    }
}
