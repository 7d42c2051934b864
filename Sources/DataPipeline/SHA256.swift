import CImageCodecs

/// SHA-256 (FIPS 180-4), for the shard digests in index.json and checkpoint
/// digests. Swift on Linux has no CryptoKit: the blocks go to the CPU's SHA
/// extensions when it has them (`an_sha256_ni_blocks`, much faster than portable
/// code) and to the textbook algorithm below otherwise; the tests check
/// both against the standard vectors, `sha256sum` and each other.
public struct SHA256: Sendable {
    /// Whether this CPU runs SHA-256 in hardware (SHA-NI).
    public static let hardwareAvailable = an_sha256_ni_available() != 0

    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
    private var pending: [UInt8] = []
    private var length: UInt64 = 0
    private let hardware: Bool

    /// The round constants, from the C side (one table for both implementations).
    nonisolated(unsafe) private static let k = UnsafeBufferPointer(start: an_sha256_round_constants(), count: 64)

    /// `hardware: false` forces the portable code (for tests and comparisons).
    public init(hardware: Bool = SHA256.hardwareAvailable) { self.hardware = hardware && SHA256.hardwareAvailable }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        var i = 0
        if !pending.isEmpty {
            let take = min(64 - pending.count, bytes.count)
            pending.append(contentsOf: bytes[0..<take])
            i = take
            if pending.count == 64 {
                let block = pending
                block.withUnsafeBytes { compress($0.baseAddress.map { UnsafeRawPointer($0) }, blocks: 1) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        let blocks = (bytes.count - i) / 64
        if blocks > 0 {
            compress(bytes.baseAddress.map { UnsafeRawPointer($0 + i) }, blocks: blocks)
            i += 64 * blocks
        }
        if i < bytes.count { pending.append(contentsOf: bytes[i...]) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    private mutating func compress(_ p: UnsafeRawPointer?, blocks: Int) {
        guard let p else { return }
        if hardware {
            // The eight words in place (a homogeneous tuple is laid out as an array).
            withUnsafeMutableBytes(of: &h) { state in
                an_sha256_ni_blocks(state.baseAddress!.assumingMemoryBound(to: UInt32.self), p.assumingMemoryBound(to: UInt8.self), blocks)
            }
            return
        }
        for b in 0..<blocks { compressPortable(p + 64 * b) }
    }

    private mutating func compressPortable(_ p: UnsafeRawPointer) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            for t in 0..<16 { w[t] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = h
            let k = SHA256.k
            for t in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
        }
    }

    /// The digest; the hasher is consumed (pads a copy).
    public func finalize() -> [UInt8] {
        var copy = self
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        while (copy.pending.count + tail.count) % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        let saved = copy.length
        copy.update(tail)
        copy.length = saved
        let words = [copy.h.0, copy.h.1, copy.h.2, copy.h.3, copy.h.4, copy.h.5, copy.h.6, copy.h.7]
        return words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (24 - 8 * UInt32($0))) } }
    }

    /// The digest in lower-case hex.
    public func hexDigest() -> String {
        finalize().map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    /// Lower-case hex digest of `bytes`.
    public static func hex(_ bytes: [UInt8], hardware: Bool = SHA256.hardwareAvailable) -> String {
        var s = SHA256(hardware: hardware)
        s.update(bytes)
        return s.hexDigest()
    }
}
