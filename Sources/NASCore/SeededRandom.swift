/// A small, fast, seedable random number generator (xoshiro256**, seeded by
/// splitmix64 as its authors recommend). The same seed gives the same
/// sequence on every machine, so sampling, augmentation and dropout are
/// reproducible; its whole state is four words, saved in checkpoints.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// Restores a generator from `state` (as saved in a checkpoint).
    public init(state: [UInt64]) {
        precondition(state.count == 4, "SeededRandom state has four words")
        self.state = (state[0], state[1], state[2], state[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform Float in [0, 1) with 24 random bits.
    public mutating func uniformFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// An independent generator for stream `index` (a rank, a worker, a
    /// subnet): the seed mixed with the index, so streams do not overlap.
    public static func stream(seed: UInt64, index: UInt64) -> SeededRandom {
        SeededRandom(seed: seed ^ (index &* 0xD1B5_4A32_D192_ED03) &+ index)
    }

    public static func == (a: SeededRandom, b: SeededRandom) -> Bool { a.stateWords == b.stateWords }
}
