/// The FLOPs-vs-accuracy Pareto front and its hypervolume.
///
/// A point dominates another when it has no more FLOPs and no less accuracy,
/// and differs in at least one. The front is the set of points no other point
/// dominates; of points with equal FLOPs and equal accuracy the first one given
/// is kept, so the front of a list never holds two equal (flops, acc1) pairs.
public enum ParetoFront {
    /// The non-dominated points of `points`, sorted by FLOPs ascending (so
    /// accuracy strictly increases along the result). O(n log n).
    public static func extract<T>(_ points: [T], flops: (T) -> Double, accuracy: (T) -> Double) -> [T] {
        // Ascending FLOPs, then descending accuracy, then input order: a sweep
        // keeps a point iff it beats the best accuracy seen at lower FLOPs.
        let order = points.indices.sorted { i, j in
            let fi = flops(points[i]), fj = flops(points[j])
            if fi != fj { return fi < fj }
            let ai = accuracy(points[i]), aj = accuracy(points[j])
            if ai != aj { return ai > aj }
            return i < j
        }
        var out: [T] = []
        var best = -Double.infinity
        for i in order {
            let a = accuracy(points[i])
            if a > best {
                out.append(points[i])
                best = a
            }
        }
        return out
    }

    /// The front of evaluated archs, on their search cost (MFLOPs or predicted ms).
    public static func extract(_ points: [EvaluatedArch]) -> [EvaluatedArch] {
        extract(points, flops: \.cost, accuracy: \.acc1)
    }

    /// At most `count` points of `front` (sorted by cost ascending) spread evenly over
    /// its cost range: for `count` targets evenly spaced from the first point's cost to
    /// the last's, the point nearest each (of two equally near, the costlier; both ends
    /// are kept), in front order. Fewer when several targets share their nearest point;
    /// all of `front` when it has no more than `count` points.
    public static func spread<T>(_ front: [T], count: Int, cost: (T) -> Double) -> [T] {
        precondition(count >= 1, "ParetoFront.spread: count \(count) < 1")
        guard front.count > count, let first = front.first, let last = front.last else { return front }
        let lo = cost(first), hi = cost(last)
        if count == 1 { return [first] }
        var chosen = Set<Int>()
        var j = 0
        for i in 0..<count {
            let target = lo + (hi - lo) * Double(i) / Double(count - 1)
            // Costs ascend: move right while the next point is no farther from the target.
            while j + 1 < front.count, abs(cost(front[j + 1]) - target) <= abs(cost(front[j]) - target) { j += 1 }
            chosen.insert(j)
        }
        return chosen.sorted().map { front[$0] }
    }

    /// The area that the front of `points` dominates above `accuracyFloor`,
    /// with FLOPs scaled to [0, 1] over `bounds`:
    ///
    ///     HV = sum over front points p with acc1 > floor and flops <= bounds.max,
    ///          sorted by FLOPs, of (x_next - x_p) * (acc1_p - floor),
    ///     x = (flops - bounds.min) / (bounds.max - bounds.min), clamped to >= 0,
    ///     x_next the next such point's x, and 1 after the last.
    ///
    /// With bounds 200-1200 and floor 70 this is the HV70 of the issue. Zero
    /// for an empty front or empty bounds.
    public static func hypervolume<T>(_ points: [T], flops: (T) -> Double, accuracy: (T) -> Double,
                                      bounds: FlopsBounds, accuracyFloor: Double) -> Double {
        let span = bounds.max - bounds.min
        guard span > 0 else { return 0 }
        let front = extract(points, flops: flops, accuracy: accuracy)
            .filter { accuracy($0) > accuracyFloor && flops($0) <= bounds.max }
        var hv = 0.0
        for (i, p) in front.enumerated() {
            let x = Swift.max(0, (flops(p) - bounds.min) / span)
            let next = i + 1 < front.count ? Swift.max(0, (flops(front[i + 1]) - bounds.min) / span) : 1
            hv += (next - x) * (accuracy(p) - accuracyFloor)
        }
        return hv
    }

    public static func hypervolume(_ points: [EvaluatedArch], bounds: FlopsBounds, accuracyFloor: Double) -> Double {
        hypervolume(points, flops: \.cost, accuracy: \.acc1, bounds: bounds, accuracyFloor: accuracyFloor)
    }
}
