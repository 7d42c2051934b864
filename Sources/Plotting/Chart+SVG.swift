import Foundation

extension Chart {
    /// The chart as a standalone SVG 1.1 document: title, axes with ticks,
    /// labels and grid lines, the series (in order, so later ones draw on
    /// top), and a legend in the lower right corner. Non-finite points are
    /// skipped. Ranges come from the data, rounded outward to nice ticks.
    public func svg() -> String {
        let left = 72.0, right = 24.0, top = 44.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xs = all.map(\.x), ys = all.flatMap { [$0.y - $0.yError, $0.y + $0.yError] }
        // 3% padding so that markers on the extremes stay inside the frame, but not below
        // zero for data that is not (no axis of negative MFLOPs for a subnet of 0.7).
        func padded(_ v: [Double]) -> Ticks {
            let lo = v.min() ?? 0, hi = v.max() ?? 1, pad = (hi - lo) * 0.03
            return Ticks(min: lo >= 0 ? Swift.max(0, lo - pad) : lo - pad, max: hi + pad)
        }
        let xt = padded(xs), yt = padded(ys)
        func px(_ x: Double) -> Double { left + (x - xt.lower) / (xt.upper - xt.lower) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (y - yt.lower) / (yt.upper - yt.lower) * plotH }

        var o = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(n(width))" height="\(n(height))" viewBox="0 0 \(n(width)) \(n(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(n(left + plotW / 2))" y="26" text-anchor="middle" font-size="16" font-weight="bold">\(escaped(title))</text>

            """
        // Grid, ticks and tick labels.
        o += "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n"
        for v in xt.values { o += "<line x1=\"\(n(px(v)))\" y1=\"\(n(top))\" x2=\"\(n(px(v)))\" y2=\"\(n(top + plotH))\"/>\n" }
        for v in yt.values { o += "<line x1=\"\(n(left))\" y1=\"\(n(py(v)))\" x2=\"\(n(left + plotW))\" y2=\"\(n(py(v)))\"/>\n" }
        o += "</g>\n<g stroke=\"black\" stroke-width=\"1\">\n"
        o += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(plotW))\" height=\"\(n(plotH))\" fill=\"none\"/>\n"
        for v in xt.values { o += "<line x1=\"\(n(px(v)))\" y1=\"\(n(top + plotH))\" x2=\"\(n(px(v)))\" y2=\"\(n(top + plotH + 5))\"/>\n" }
        for v in yt.values { o += "<line x1=\"\(n(left - 5))\" y1=\"\(n(py(v)))\" x2=\"\(n(left))\" y2=\"\(n(py(v)))\"/>\n" }
        o += "</g>\n<g fill=\"black\">\n"
        for v in xt.values { o += "<text x=\"\(n(px(v)))\" y=\"\(n(top + plotH + 20))\" text-anchor=\"middle\">\(xt.label(v))</text>\n" }
        for v in yt.values { o += "<text x=\"\(n(left - 9))\" y=\"\(n(py(v) + 4))\" text-anchor=\"end\">\(yt.label(v))</text>\n" }
        o += "<text x=\"\(n(left + plotW / 2))\" y=\"\(n(height - 16))\" text-anchor=\"middle\" font-size=\"14\">\(escaped(xLabel))</text>\n"
        o += "<text transform=\"translate(18 \(n(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">\(escaped(yLabel))</text>\n"
        o += "</g>\n"

        // Series.
        for s in series {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            o += "<g class=\"series\" data-name=\"\(escaped(s.name))\">\n"
            // Error bars under the points: a vertical line with caps.
            for p in pts where p.yError > 0 {
                let x = px(p.x), y0 = py(p.y - p.yError), y1 = py(p.y + p.yError)
                o += "<path class=\"error-bar\" d=\"M\(n(x)),\(n(y0)) L\(n(x)),\(n(y1)) M\(n(x - 3)),\(n(y0)) L\(n(x + 3)),\(n(y0)) M\(n(x - 3)),\(n(y1)) L\(n(x + 3)),\(n(y1))\" stroke=\"\(s.color)\" stroke-width=\"1.2\" fill=\"none\" stroke-opacity=\"0.8\"/>\n"
            }
            switch s.style {
            case .points(let r):
                for p in pts { o += "<circle cx=\"\(n(px(p.x)))\" cy=\"\(n(py(p.y)))\" r=\"\(n(r))\" fill=\"\(s.color)\" fill-opacity=\"0.55\"/>\n" }
            case .rings(let r):
                for p in pts { o += "<circle cx=\"\(n(px(p.x)))\" cy=\"\(n(py(p.y)))\" r=\"\(n(r))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>\n" }
            case .line(let w):
                let path = pts.map { "\(n(px($0.x))),\(n(py($0.y)))" }.joined(separator: " ")
                o += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(n(w))\" stroke-linejoin=\"round\"/>\n"
                for p in pts { o += "<circle cx=\"\(n(px(p.x)))\" cy=\"\(n(py(p.y)))\" r=\"\(n(w + 1))\" fill=\"\(s.color)\"/>\n" }
            case .markers:
                for p in pts {
                    let x = px(p.x), y = py(p.y), d = 8.0
                    o += "<path d=\"M\(n(x)),\(n(y - d)) L\(n(x + d)),\(n(y)) L\(n(x)),\(n(y + d)) L\(n(x - d)),\(n(y)) Z\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2.5\"/>\n"
                    if !p.label.isEmpty {
                        // Labels go inwards so they stay inside the plot area: on the left
                        // half below-right (a front usually rises from the min subnet), on
                        // the right half above-left.
                        let anchorEnd = x > left + plotW / 2
                        o += "<text x=\"\(n(anchorEnd ? x - 12 : x + 12))\" y=\"\(n(anchorEnd ? y - 10 : y + 20))\" text-anchor=\"\(anchorEnd ? "end" : "start")\" fill=\"\(s.color)\" font-weight=\"bold\">\(escaped(p.label))</text>\n"
                    }
                }
            }
            o += "</g>\n"
        }

        // Legend: one row per named series, in the lower right corner.
        let named = series.filter { !$0.name.isEmpty }
        if !named.isEmpty {
            let rowH = 20.0
            let boxW = 24.0 + Double(named.map(\.name.count).max() ?? 0) * 7.5 + 40
            let boxH = rowH * Double(named.count) + 10
            let bx = left + plotW - boxW - 10, by = top + plotH - boxH - 10
            o += "<g class=\"legend\">\n<rect x=\"\(n(bx))\" y=\"\(n(by))\" width=\"\(n(boxW))\" height=\"\(n(boxH))\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#999\"/>\n"
            for (i, s) in named.enumerated() {
                let cy = by + 5 + rowH * (Double(i) + 0.5), sx = bx + 10
                switch s.style {
                case .points(let r): o += "<circle cx=\"\(n(sx + 10))\" cy=\"\(n(cy))\" r=\"\(n(max(r, 3)))\" fill=\"\(s.color)\" fill-opacity=\"0.55\"/>\n"
                case .rings(let r): o += "<circle cx=\"\(n(sx + 10))\" cy=\"\(n(cy))\" r=\"\(n(max(r, 3)))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>\n"
                case .line(let w): o += "<line x1=\"\(n(sx))\" y1=\"\(n(cy))\" x2=\"\(n(sx + 20))\" y2=\"\(n(cy))\" stroke=\"\(s.color)\" stroke-width=\"\(n(w))\"/>\n"
                case .markers: o += "<path d=\"M\(n(sx + 10)),\(n(cy - 6)) L\(n(sx + 16)),\(n(cy)) L\(n(sx + 10)),\(n(cy + 6)) L\(n(sx + 4)),\(n(cy)) Z\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"/>\n"
                }
                o += "<text x=\"\(n(sx + 28))\" y=\"\(n(cy + 4))\">\(escaped(s.name))</text>\n"
            }
            o += "</g>\n"
        }
        o += "</svg>\n"
        return o
    }
}

/// A coordinate with at most two decimals ("12.5", "300").
private func n(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
}

/// Text content and attribute values with the five XML specials escaped.
public func escaped(_ s: String) -> String {
    var o = ""
    for c in s {
        switch c {
        case "&": o += "&amp;"
        case "<": o += "&lt;"
        case ">": o += "&gt;"
        case "\"": o += "&quot;"
        case "'": o += "&apos;"
        default: o.append(c)
        }
    }
    return o
}
