/// Ridge regression on standardised features: with `z_j = (x_j - mean_j) / sd_j`,
/// it minimises `sum_i (y_i - b - w.z_i)^2 + alpha * |w|^2` (the intercept `b`
/// is not penalised), solved exactly by Cholesky factorisation of
/// `Z'Z + alpha I`. Stored in raw units: `prediction = intercept + coefficients.x`.
/// Columns with zero spread get coefficient 0.
public struct RidgeRegression: Sendable, Equatable {
    public var alpha: Double
    public var intercept: Double
    public var coefficients: [Double]

    public init(alpha: Double, intercept: Double, coefficients: [Double]) {
        self.alpha = alpha
        self.intercept = intercept
        self.coefficients = coefficients
    }

    public static func fit(_ x: FeatureMatrix, _ y: [Double], alpha: Double) -> RidgeRegression {
        precondition(x.rows == y.count && x.rows > 0, "one target per row, at least one row")
        precondition(alpha >= 0, "alpha must be at least 0")
        let n = x.rows, d = x.columns
        let nd = Double(n)
        let (mean, sd, varies) = x.columnMoments()
        let yMean = y.reduce(0, +) / nd
        let active = (0..<d).filter { varies[$0] }
        let k = active.count
        // A = Z'Z + alpha I and rhs = Z'(y - mean y), over the active columns.
        var a = [Double](repeating: 0, count: k * k), rhs = [Double](repeating: 0, count: k)
        var z = [Double](repeating: 0, count: k)
        for r in 0..<n {
            for (p, c) in active.enumerated() { z[p] = (x[r, c] - mean[c]) / sd[c] }
            let t = y[r] - yMean
            for p in 0..<k {
                rhs[p] += z[p] * t
                for q in 0...p { a[p * k + q] += z[p] * z[q] }
            }
        }
        // Tiny jitter keeps alpha = 0 solvable when columns are collinear.
        for p in 0..<k { a[p * k + p] += alpha + 1e-9 * nd }
        let w = choleskySolve(a, rhs, k)
        var coefficients = [Double](repeating: 0, count: d)
        var intercept = yMean
        for (p, c) in active.enumerated() {
            coefficients[c] = w[p] / sd[c]
            intercept -= coefficients[c] * mean[c]
        }
        return RidgeRegression(alpha: alpha, intercept: intercept, coefficients: coefficients)
    }

    /// Solves `A w = b` for symmetric positive definite `A` (lower triangle
    /// read, row-major k x k).
    static func choleskySolve(_ a: [Double], _ b: [Double], _ k: Int) -> [Double] {
        var l = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
            for j in 0...i {
                var s = a[i * k + j]
                for m in 0..<j { s -= l[i * k + m] * l[j * k + m] }
                l[i * k + j] = i == j ? max(s, 1e-300).squareRoot() : s / l[j * k + j]
            }
        }
        var y = b
        for i in 0..<k {
            for m in 0..<i { y[i] -= l[i * k + m] * y[m] }
            y[i] /= l[i * k + i]
        }
        for i in stride(from: k - 1, through: 0, by: -1) {
            for m in (i + 1)..<k { y[i] -= l[m * k + i] * y[m] }
            y[i] /= l[i * k + i]
        }
        return y
    }

    public func predict(_ x: UnsafeBufferPointer<Double>) -> Double {
        var s = intercept
        for (c, w) in coefficients.enumerated() { s += w * x[c] }
        return s
    }
}
