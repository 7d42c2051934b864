/// Trees packed into one contiguous node array for fast batch prediction:
/// walking `[RegressionTree]` one sample at a time retains and releases five
/// arrays per tree, which costs more than the walk itself.
struct PackedTrees {
    /// One node: a leaf when `feature < 0`; children are absolute indices.
    struct Node {
        var feature: Int32
        var left: Int32
        var right: Int32
        var threshold: Double
        var value: Double
    }

    var nodes: [Node] = []
    var roots: [Int32] = []

    init(_ trees: [RegressionTree]) {
        nodes.reserveCapacity(trees.reduce(0) { $0 + $1.nodeCount })
        for t in trees {
            let base = Int32(nodes.count)
            roots.append(base)
            for i in 0..<t.nodeCount {
                let leaf = t.feature[i] < 0
                nodes.append(Node(feature: t.feature[i], left: leaf ? -1 : base + t.left[i], right: leaf ? -1 : base + t.right[i],
                                  threshold: t.threshold[i], value: t.value[i]))
            }
        }
    }

    /// The sum over trees of each row's leaf value, for rows lo..<hi of `x`
    /// (row-major, `columns` wide), written to `out[0..<(hi - lo)]`. Trees are
    /// the outer loop so each stays in cache while the rows pass through it;
    /// each row's sum still adds the trees in order, as a one-row walk does.
    func sums(_ x: UnsafeBufferPointer<Double>, columns: Int, rows: Range<Int>, into out: UnsafeMutableBufferPointer<Double>) {
        precondition(out.count >= rows.count && x.count >= rows.upperBound * columns, "PackedTrees.sums: buffer sizes")
        for i in 0..<rows.count { out[i] = 0 }
        nodes.withUnsafeBufferPointer { nodes in
            for root in roots {
                for r in rows {
                    let row = r * columns
                    var n = Int(root)
                    while true {
                        let node = nodes[n]
                        if node.feature < 0 { out[r - rows.lowerBound] += node.value; break }
                        n = Int(x[row + Int(node.feature)] <= node.threshold ? node.left : node.right)
                    }
                }
            }
        }
    }
}
