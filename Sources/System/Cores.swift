#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// How many cores this process may use: the CPUs of its affinity mask (what
/// `taskset`, cgroups' cpusets, `mpirun --bind-to` and Slurm give it), else the
/// online processor count. The one place the tools ask; `--jobs`/`--threads` override.
public enum Cores {
    public static var available: Int {
        // A mask of 1024 CPUs (glibc's cpu_set_t).
        var mask = [UInt64](repeating: 0, count: 16)
        let ok = mask.withUnsafeMutableBytes { csystem_sched_getaffinity(0, $0.count, $0.baseAddress) } == 0
        let n = mask.reduce(0) { $0 + $1.nonzeroBitCount }
        if ok && n > 0 { return n }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
