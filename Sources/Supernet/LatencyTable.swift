import FileFormats
import System

/// A per-segment latency table (as once-for-all's lookup tables): measured milliseconds of
/// each segment configuration of a subnet's forward pass at one batch size on one
/// machine, and what a subnet's latency is predicted to be from it.
///
/// Segments: the stem (`stem r<resolution> c<width>`), each active block (`block
/// s<stage> in<size> c<in>-<mid>-<out> k<kernel> s<stride>`, `se` when it has one) and the
/// head (`head in<size> c<in> f<features>`). A subnet's predicted latency is the sum of its
/// segments' entries plus `overheadMs` (the measured passes' time outside the segments:
/// planning, the input copy). A segment never measured is estimated from its kind's fit,
/// ms = a + b * MFLOPs over the measured entries of that kind (stem, blocks of its stage,
/// head; all blocks where a stage has fewer than two), so every arch gets a prediction.
public struct LatencyTable: Sendable, Equatable {
    public static let format = "alphanet-latency-table"

    public struct Entry: Sendable, Equatable {
        public var ms: Double
        public var mflops: Double
        public var samples: Int

        public init(ms: Double, mflops: Double, samples: Int) {
            self.ms = ms
            self.mflops = mflops
            self.samples = samples
        }
    }

    public var batch: Int
    public var threads: Int
    public var entries: [String: Entry]
    public var overheadMs: Double

    public init(batch: Int, threads: Int, entries: [String: Entry] = [:], overheadMs: Double = 0) {
        self.batch = batch
        self.threads = threads
        self.entries = entries
        self.overheadMs = overheadMs
    }

    /// One segment of a subnet: its table key, its kind (for the fit) and its MFLOPs per image.
    public struct Segment: Sendable, Equatable {
        public var key: String
        public var kind: String
        public var mflops: Double
    }

    /// The segments of `arch`, in the order `Supernet.segmentNanoseconds` times them.
    public static func segments(of arch: Arch, in space: SearchSpace) -> [Segment] {
        func conv(_ cin: Int, _ cout: Int, _ size: Int, _ groups: Int, _ k: Int) -> Double {
            Double(cin) * Double(cout * size * size) * Double(k * k) / Double(groups) / 1e6
        }
        var out: [Segment] = []
        let blocks = arch.blocks(in: space)
        let stemSize = Arch.convOutput(arch.resolution, stride: space.firstConv.stride)
        out.append(Segment(key: "stem r\(arch.resolution) c\(arch.width[0])", kind: "stem", mflops: conv(3, arch.width[0], stemSize, 1, 3)))
        for b in blocks {
            var f = 0.0
            if b.hasExpand { f += conv(b.inChannels, b.midChannels, b.inSize, 1, 1) }
            f += conv(b.midChannels, b.midChannels, b.outSize, b.midChannels, b.kernel)
            f += conv(b.midChannels, b.outChannels, b.outSize, 1, 1)
            if let se = b.seChannels { f += 2 * conv(b.midChannels, se, 1, 1, 1) }
            if b.inChannels != b.outChannels { f += conv(b.inChannels, b.outChannels, b.outSize, 1, 1) }
            let key = "block s\(b.stage) in\(b.inSize) c\(b.inChannels)-\(b.midChannels)-\(b.outChannels) k\(b.kernel) s\(b.stride)" + (b.seChannels != nil ? " se" : "")
            out.append(Segment(key: key, kind: "block s\(b.stage)", mflops: f))
        }
        let size = blocks.last?.outSize ?? stemSize
        let cLast = blocks.last?.outChannels ?? arch.width[0]
        let expand = arch.finalExpandChannels
        let head = conv(cLast, expand, size, 1, 1) + conv(expand, arch.width[8], 1, 1, 1) + Double(arch.width[8] * space.nClasses) / 1e6
        out.append(Segment(key: "head in\(size) c\(cLast) f\(arch.width[8])", kind: "head", mflops: head))
        return out
    }

    /// The entries of a kind ("stem", "head", "block", "block s2").
    func entries(ofKind kind: String) -> [Entry] {
        entries.filter { $0.key.hasPrefix(kind + " ") }.map(\.value)
    }

    /// Least-squares ms = a + b * MFLOPs over entries whose key starts with `kind`
    /// (b >= 0; with one entry or no spread, its mean time per MFLOP).
    func fit(_ kind: String) -> (a: Double, b: Double)? {
        let pts = entries(ofKind: kind)
        guard !pts.isEmpty else { return nil }
        let n = Double(pts.count)
        let mx = pts.map(\.mflops).reduce(0, +) / n, my = pts.map(\.ms).reduce(0, +) / n
        let sxx = pts.reduce(0) { $0 + ($1.mflops - mx) * ($1.mflops - mx) }
        let sxy = pts.reduce(0) { $0 + ($1.mflops - mx) * ($1.ms - my) }
        if pts.count < 2 || sxx <= 0 { return mx > 0 ? (0, my / mx) : (my, 0) }
        let b = max(0, sxy / sxx)
        return (my - b * mx, b)
    }

    /// The predicted milliseconds of one forward pass of `arch` at the table's batch
    /// size, and how many of its segments the table holds (the rest came from fits).
    public func predict(_ arch: Arch, in space: SearchSpace) -> (ms: Double, measuredSegments: Int, segments: Int) {
        let segs = Self.segments(of: arch, in: space)
        var total = overheadMs, hits = 0
        for s in segs {
            if let e = entries[s.key] {
                total += e.ms
                hits += 1
            } else {
                let kind = s.kind.hasPrefix("block") && entries(ofKind: s.kind).count < 2 ? "block" : s.kind
                if let (a, b) = fit(kind) { total += max(0, a + b * s.mflops) }
            }
        }
        return (total, hits, segs.count)
    }

    // MARK: File

    public var json: JSONValue {
        .object([
            ("format", .string(Self.format)), ("version", JSONValue(1)), ("batch", JSONValue(batch)), ("threads", JSONValue(threads)),
            ("overhead_ms", .double(overheadMs)),
            ("entries", .object(entries.keys.sorted().map { k in
                let e = entries[k] ?? Entry(ms: 0, mflops: 0, samples: 0)
                return (k, .object([("ms", .double(e.ms)), ("mflops", .double(e.mflops)), ("samples", JSONValue(e.samples))]))
            })),
        ])
    }

    public init(json: JSONValue) throws(Failure) {
        guard json["format"]?.stringValue == Self.format else { throw .data("not a latency table (format '\(Self.format)')") }
        guard json["version"]?.intValue == 1 else { throw .data("latency table version \(json["version"]?.jsonText ?? "none") is not supported (this build reads 1)") }
        guard let b = json["batch"]?.intValue, b >= 1, let t = json["threads"]?.intValue, t >= 1,
              let o = json["overhead_ms"]?.doubleValue, o.isFinite, let list = json["entries"]?.objectValue else {
            throw .data("latency table: 'batch', 'threads', 'overhead_ms' and 'entries' are needed")
        }
        var entries: [String: Entry] = [:]
        for (k, v) in list {
            guard let ms = v["ms"]?.doubleValue, ms.isFinite, ms >= 0, let f = v["mflops"]?.doubleValue, f.isFinite,
                  let n = v["samples"]?.intValue, n >= 1 else { throw .data("latency table: entry '\(k)' needs ms >= 0, mflops and samples >= 1") }
            entries[k] = Entry(ms: ms, mflops: f, samples: Int(n))
        }
        self.init(batch: Int(b), threads: Int(t), entries: entries, overheadMs: o)
    }
}
