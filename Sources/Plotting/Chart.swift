/// A 2-D chart: series of points in data coordinates, drawn as SVG by
/// `svg()` (Chart+SVG.swift). Plain value types; no I/O.
public struct Chart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Pixel size of the whole picture.
    public var width: Double
    public var height: Double

    public init(title: String, xLabel: String, yLabel: String, series: [Series] = [], width: Double = 800, height: Double = 560) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.width = width
        self.height = height
    }
}

/// One named set of points with one style. A series with an empty `name`
/// is drawn but left out of the legend (e.g. the 2nd..nth line of a group).
public struct Series: Sendable {
    public enum Style: Sendable, Equatable {
        /// Unconnected dots of this radius.
        case points(radius: Double)
        /// A polyline through the points in the given order, with small dots.
        case line(width: Double)
        /// Large outlined diamonds, each with its own text label.
        case markers
        /// Unfilled circles of this radius.
        case rings(radius: Double)
    }

    public var name: String
    public var style: Style
    /// CSS colour, e.g. "#1f77b4".
    public var color: String
    public var points: [Point]

    public init(name: String, style: Style, color: String, points: [Point]) {
        self.name = name
        self.style = style
        self.color = color
        self.points = points
    }
}

public struct Point: Sendable, Equatable {
    public var x: Double
    public var y: Double
    /// Text drawn next to a marker (markers only).
    public var label: String
    /// Half the height of the point's error bar (e.g. a 95% interval); 0: none.
    public var yError: Double

    public init(x: Double, y: Double, label: String = "", yError: Double = 0) {
        self.x = x
        self.y = y
        self.label = label
        self.yError = yError
    }
}

/// A qualitative palette (the matplotlib "tab10" colours), cycled.
public enum Palette {
    public static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    public static func color(_ i: Int) -> String { colors[((i % colors.count) + colors.count) % colors.count] }
}
