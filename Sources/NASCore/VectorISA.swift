import CVectorKernels
import Foundation

/// The vector instructions NASCore's own kernels run (OpenBLAS picks its own: `BLASKernels`).
///
/// The Swift kernels are compiled for AVX2 (x86-64-v3). On a CPU with AVX-512 the hottest
/// compute-bound loop, the depthwise convolution, runs a 512-bit C version instead
/// (`CVectorKernels`): 1.4-1.9x the AVX2 loop's GFLOP/s on the network's shapes (BENCHMARKS.md,
/// "Kernels"). The two give the same sums in the same order per output, so results agree
/// to the last bit.
public enum VectorISA: String, Sendable, CaseIterable {
    case avx2
    case avx512

    /// The widest set this CPU and OS support.
    public static let supported: VectorISA = vk_cpu_has_avx512() != 0 ? .avx512 : .avx2

    /// What a `ComputeContext` uses by default: `supported`, unless the environment sets
    /// `ALPHANET_VECTOR_ISA=avx2` (to measure as on an AVX2-only machine). A value the CPU
    /// cannot run, or an unknown one, leaves `supported`.
    public static let preferred: VectorISA = {
        guard let name = ProcessInfo.processInfo.environment["ALPHANET_VECTOR_ISA"],
              let isa = VectorISA(rawValue: name.lowercased()) else { return supported }
        return isa.isSupported ? isa : supported
    }()

    /// Whether this CPU can run the set.
    public var isSupported: Bool { self == .avx2 || Self.supported == .avx512 }
}
