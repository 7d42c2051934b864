import NASCore
import Supernet

/// An arch as a flat list of genes, in the official key order: resolution,
/// width (9), depth, kernel_size, expand_ratio (7 each), with each gene's
/// choice list (as in the space file) beside it. The variation operators
/// work on this view.
public struct GeneLayout: Sendable {
    public let choices: [[Int]]
    /// Each gene's choices sorted ascending, for moves to a neighbour value.
    public let sortedChoices: [[Int]]

    public init(space: SearchSpace) {
        choices = [space.resolutions] + space.widthChoices + space.depthChoices + space.kernelChoices + space.expandChoices
        sortedChoices = choices.map { $0.sorted() }
    }

    public var count: Int { choices.count }

    public func genes(_ a: Arch) -> [Int] {
        [a.resolution] + a.width + a.depth + a.kernelSize + a.expandRatio
    }

    public func arch(_ g: [Int]) -> Arch {
        precondition(g.count == 31, "an arch has 31 genes")
        return Arch(resolution: g[0], width: Array(g[1..<10]), depth: Array(g[10..<17]),
                    kernelSize: Array(g[17..<24]), expandRatio: Array(g[24..<31]))
    }
}

extension SeededRandom {
    /// A uniform index in 0..<n (n > 0).
    mutating func index(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The official AttentiveNAS variation operators (`mutate_and_reset`,
/// `crossover_and_reset`), drawing random numbers in the official order.
public enum OfficialVariation {
    /// Each gene, with probability `prob`, takes another of its choices,
    /// uniformly (a gene with one choice keeps it); one uniform draw per
    /// gene, in gene order.
    public static func mutate(_ a: Arch, prob: Double, layout: GeneLayout, random: inout SeededRandom) -> Arch {
        var g = layout.genes(a)
        for i in g.indices where random.uniform() < prob {
            let others = layout.choices[i].filter { $0 != g[i] }
            if !others.isEmpty { g[i] = others[random.index(others.count)] }
        }
        return layout.arch(g)
    }

    /// Each gene from `a` with probability `p`, else from `b`.
    public static func crossover(_ a: Arch, _ b: Arch, p: Double = 0.5, layout: GeneLayout, random: inout SeededRandom) -> Arch {
        let ga = layout.genes(a), gb = layout.genes(b)
        return layout.arch(ga.indices.map { random.uniform() < p ? ga[$0] : gb[$0] })
    }
}

/// Local moves for our search.
public enum LocalVariation {
    /// `moves` genes (distinct, among those with several choices) each step to
    /// an adjacent value of their sorted choice list, up or down at random
    /// (the only way at either end).
    public static func step(_ a: Arch, moves: Int, layout: GeneLayout, random: inout SeededRandom) -> Arch {
        var g = layout.genes(a)
        let free = g.indices.filter { layout.sortedChoices[$0].count > 1 }
        guard !free.isEmpty else { return a }
        var picked = Set<Int>()
        while picked.count < min(moves, free.count) {
            let i = free[random.index(free.count)]
            guard picked.insert(i).inserted else { continue }
            let c = layout.sortedChoices[i]
            let k = c.firstIndex(of: g[i]) ?? 0
            let up = k == 0 ? true : (k == c.count - 1 ? false : random.next() & 1 == 0)
            g[i] = c[up ? k + 1 : k - 1]
        }
        return layout.arch(g)
    }
}
