/// Several training runs per arm (e.g. seeds of one recipe), each measured on the same
/// archs, compared: per arm and role (min, mid1, ..., max) the mean and the sample
/// standard deviation of acc1 over the arm's runs, and per arm the hypervolume of each
/// run's front summarised the same way (`pipelines/ablation.mk`).
///
/// The hypervolume of a run is `ParetoFront.hypervolume` of all its points (every role
/// and the unnamed ones) over the FLOPs range of all points of the comparison, above
/// `accuracyFloor`: with floor 0 it is the mean, over that range, of the best accuracy
/// the run's front offers at no more FLOPs, in accuracy points.
public struct RunComparison: Sendable {
    /// One measured arch of a run.
    public struct Point: Sendable, Equatable {
        /// Its role (nil: it counts only towards the front).
        public var role: String?
        public var flops: Double
        public var acc1: Double
        /// Images its accuracy was measured on (for the binomial standard error), if known.
        public var valImages: Int?

        public init(role: String?, flops: Double, acc1: Double, valImages: Int? = nil) {
            self.role = role
            self.flops = flops
            self.acc1 = acc1
            self.valImages = valImages
        }
    }

    public struct Run: Sendable {
        public var arm: String
        public var points: [Point]

        public init(arm: String, points: [Point]) {
            self.arm = arm
            self.points = points
        }
    }

    /// Mean and sample standard deviation (n - 1; 0 for one value) of `values`.
    public struct Summary: Sendable, Equatable {
        public var values: [Double]
        public var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }
        public var std: Double {
            guard values.count > 1 else { return 0 }
            let m = mean
            return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
        }
    }

    /// A role's accuracy under one arm.
    public struct Row: Sendable, Equatable {
        public var arm: String
        public var role: String
        public var flops: Double
        public var acc1: Summary
    }

    /// What makes a set of runs incomparable, with the run's index.
    public struct Mismatch: Error, Sendable, CustomStringConvertible {
        public var run: Int
        public var description: String
    }

    /// Arms in the order they first appear.
    public let arms: [String]
    /// Roles in ascending FLOPs.
    public let roles: [String]
    /// One per arm and role, arms then roles in order.
    public let rows: [Row]
    /// Per arm, the hypervolume of each run's front.
    public let hypervolume: [String: Summary]
    /// The FLOPs range of the hypervolume.
    public let bounds: FlopsBounds
    public let accuracyFloor: Double
    /// The mean binomial standard error of one estimate, in points (nil without val_images).
    public let standardError: Double?

    /// Every run must hold each role exactly once, the same roles as the first run, each
    /// role at the same FLOPs in every run (the same archs).
    public init(runs: [Run], accuracyFloor: Double = 0) throws(Mismatch) {
        guard let first = runs.first else { throw Mismatch(run: 0, description: "no runs to compare") }
        func roleMap(_ run: Run, _ index: Int) throws(Mismatch) -> [String: Double] {
            var map: [String: Double] = [:]
            for p in run.points {
                guard let r = p.role else { continue }
                guard map[r] == nil else { throw Mismatch(run: index, description: "role '\(r)' appears twice") }
                map[r] = p.flops
            }
            return map
        }
        let reference = try roleMap(first, 0)
        guard !reference.isEmpty else { throw Mismatch(run: 0, description: "no line has a 'role'") }
        for (i, run) in runs.enumerated() {
            guard !run.points.isEmpty else { throw Mismatch(run: i, description: "holds no measured arch") }
            let map = try roleMap(run, i)
            if Set(map.keys) != Set(reference.keys) {
                throw Mismatch(run: i, description: "roles \(map.keys.sorted()) differ from the first run's \(reference.keys.sorted())")
            }
            for (r, f) in map where abs(f - (reference[r] ?? f)) > 1e-6 * max(1, abs(f)) {
                throw Mismatch(run: i, description: "role '\(r)' has \(f) MFLOPs where the first run's has \(reference[r] ?? 0): not the same arch")
            }
        }
        var arms: [String] = []
        for r in runs where !arms.contains(r.arm) { arms.append(r.arm) }
        let roles = reference.keys.sorted { (reference[$0] ?? 0, $0) < (reference[$1] ?? 0, $1) }
        let all = runs.flatMap(\.points)
        let lo = all.map(\.flops).min() ?? 0, hi = all.map(\.flops).max() ?? 0
        bounds = FlopsBounds(min: lo, max: hi)
        var rows: [Row] = []
        var hv: [String: Summary] = [:]
        for arm in arms {
            let mine = runs.filter { $0.arm == arm }
            for role in roles {
                let values = mine.compactMap { $0.points.first { $0.role == role }?.acc1 }
                rows.append(Row(arm: arm, role: role, flops: reference[role] ?? 0, acc1: Summary(values: values)))
            }
            hv[arm] = Summary(values: mine.map { ParetoFront.hypervolume($0.points, flops: \.flops, accuracy: \.acc1, bounds: FlopsBounds(min: lo, max: hi), accuracyFloor: accuracyFloor) })
        }
        let errors = all.compactMap { p -> Double? in
            guard let n = p.valImages, n > 0, (0...100).contains(p.acc1) else { return nil }
            let q = p.acc1 / 100
            return 100 * (q * (1 - q) / Double(n)).squareRoot()
        }
        standardError = errors.isEmpty ? nil : errors.reduce(0, +) / Double(errors.count)
        self.arms = arms
        self.roles = roles
        self.rows = rows
        self.hypervolume = hv
        self.accuracyFloor = accuracyFloor
    }

    /// The runs per arm.
    public func runCount(_ arm: String) -> Int { hypervolume[arm]?.values.count ?? 0 }

    /// A Markdown table: one row per arm, a column per role and the hypervolume, cells
    /// "mean ± std" (two decimals), then a line stating the runs and the noise level.
    public func markdown(title: String) -> String {
        func cell(_ s: Summary) -> String { "\(Self.fixed(s.mean)) ± \(Self.fixed(s.std))" }
        var out = "### \(title)\n\n"
        let header = ["arm", "runs"] + roles.map { r in "\(r) (\(Self.fixed(rows.first { $0.role == r }?.flops ?? 0, digits: 1)) MFLOPs)" } + ["front HV"]
        out += "| " + header.joined(separator: " | ") + " |\n"
        out += "|" + String(repeating: "---|", count: header.count) + "\n"
        for arm in arms {
            var cells = [arm, String(runCount(arm))]
            for role in roles { cells.append(rows.first { $0.arm == arm && $0.role == role }.map { cell($0.acc1) } ?? "") }
            cells.append(hypervolume[arm].map(cell) ?? "")
            out += "| " + cells.joined(separator: " | ") + " |\n"
        }
        out += "\ntop-1 % on the validation set, mean ± sample std over the runs"
        if let se = standardError { out += "; one estimate's binomial standard error is \(Self.fixed(se)) points" }
        out += "; front HV: the mean over \(Self.fixed(bounds.min, digits: 1))-\(Self.fixed(bounds.max, digits: 1)) MFLOPs of the best top-1 at no more FLOPs"
        out += accuracyFloor == 0 ? ".\n" : ", above \(Self.fixed(accuracyFloor)).\n"
        return out
    }

    static func fixed(_ v: Double, digits: Int = 2) -> String {
        guard v.isFinite else { return "nan" }
        var s = String(Int((abs(v) * pow10(digits)).rounded()))
        while s.count <= digits { s = "0" + s }
        let cut = s.index(s.endIndex, offsetBy: -digits)
        let sign = v < 0 && s.contains(where: { $0 != "0" }) ? "-" : ""
        return digits == 0 ? sign + s : sign + s[..<cut] + "." + s[cut...]
    }

    static func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 10 } }
}
