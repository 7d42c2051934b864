/// A ridge regression of acc1 on one-hot genes: acc1 ~ mean + sum over genes
/// of w[gene][value]. Cheap to fit (a few dozen columns, Cholesky) and a fair
/// ranker of nearby archs; `FrontSearch` uses it to choose which of many
/// candidate children to spend evaluations on. It is a screen, never a
/// replacement: every arch the search reports was evaluated.
struct AdditiveSurrogate {
    /// column[gene][choice index], -1 for genes with one choice.
    private let column: [[Int]]
    private let choices: [[Int]]
    private var weights: [Double]
    private var mean: Double

    init(layout: GeneLayout) {
        choices = layout.choices
        var next = 0
        var column: [[Int]] = []
        for c in layout.choices {
            if c.count > 1 {
                column.append(Array(next..<(next + c.count)))
                next += c.count
            } else {
                column.append(Array(repeating: -1, count: c.count))
            }
        }
        self.column = column
        weights = Array(repeating: 0, count: next)
        mean = 0
    }

    /// The active columns of a genome.
    private func active(_ genes: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(genes.count)
        for (i, v) in genes.enumerated() {
            guard let k = choices[i].firstIndex(of: v) else { continue }
            let c = column[i][k]
            if c >= 0 { out.append(c) }
        }
        return out
    }

    func predict(_ genes: [Int]) -> Double {
        var y = mean
        for c in active(genes) { y += weights[c] }
        return y
    }

    /// Fits to (genes, acc1) samples with ridge penalty `lambda`; keeps the
    /// previous fit if the system is singular (it never is for lambda > 0).
    mutating func fit(_ samples: [([Int], Double)], lambda: Double = 0.5) {
        guard !samples.isEmpty else { return }
        let n = weights.count
        let mu = samples.reduce(0) { $0 + $1.1 } / Double(samples.count)
        // Normal equations (X'X + lambda I) w = X'(y - mu), X binary.
        var a = [Double](repeating: 0, count: n * n)
        var b = [Double](repeating: 0, count: n)
        for (g, y) in samples {
            let cols = active(g)
            for i in cols {
                b[i] += y - mu
                for j in cols { a[i * n + j] += 1 }
            }
        }
        for i in 0..<n { a[i * n + i] += lambda }
        guard let w = Self.solveCholesky(a, b, n: n) else { return }
        weights = w
        mean = mu
    }

    /// Solves the symmetric positive definite system a x = b; nil if a is not
    /// positive definite.
    static func solveCholesky(_ a: [Double], _ b: [Double], n: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var y = b
        for i in 0..<n {
            var s = y[i]
            for k in 0..<i { s -= l[i * n + k] * y[k] }
            y[i] = s / l[i * n + i]
        }
        var x = y
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = x[i]
            for k in (i + 1)..<n { s -= l[k * n + i] * x[k] }
            x[i] = s / l[i * n + i]
        }
        return x
    }
}
