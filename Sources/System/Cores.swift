#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// How many cores this process may use: the CPUs of its affinity mask (what
/// `taskset`, cgroups' cpusets, `mpirun --bind-to` and Slurm give it), else the
/// online processor count. The one place the tools ask; `--jobs`/`--threads` override.
///
/// An MPI rank that the launcher did not bind (`mpirun --bind-to none`, or
/// `--oversubscribe`, which binds nothing) sees every CPU: it takes its share, the
/// CPUs divided by the ranks on its node, so the ranks do not oversubscribe the node.
public enum Cores {
    public static var available: Int {
        // A mask of 1024 CPUs (glibc's cpu_set_t).
        var mask = [UInt64](repeating: 0, count: 16)
        let ok = mask.withUnsafeMutableBytes { csystem_sched_getaffinity(0, $0.count, $0.baseAddress) } == 0
        let n = mask.reduce(0) { $0 + $1.nonzeroBitCount }
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let cores = ok && n > 0 ? n : online
        if cores >= online, let local = localRanks, local > 1 { return max(1, cores / local) }
        return cores
    }

    /// Ranks of this MPI job on this node, from the launcher's environment (OpenMPI,
    /// MPICH's hydra, Slurm); nil outside a job.
    public static var localRanks: Int? {
        for name in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"] {
            if let v = getenv(name), let n = Int(String(cString: v)), n >= 1 { return n }
        }
        return nil
    }
}
