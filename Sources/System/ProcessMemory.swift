import CSystem

/// How the process's allocator treats freed memory.
///
/// glibc returns freed memory to the system eagerly: blocks of 128 KiB and more
/// are fresh `mmap`s, and the top of the heap is trimmed once 128 KiB is free.
/// Our tools allocate and free the same large buffers over and over (activations
/// every batch, decoded images every file, a decompressed shard of 224 px images),
/// so each one came back as new pages, faulted in and zeroed by the kernel again.
/// `keepFreedMemory()` makes glibc keep them: no block comes from `mmap`
/// (`M_MMAP_MAX` 0, PyTorch's tuned `MALLOC_MMAP_MAX_=0`; the threshold alone stops at
/// 32 MiB), every thread allocates from the main heap (`M_ARENA_MAX` 1: a thread's
/// own arena falls back to `mmap` beyond its 64 MiB heaps whatever `M_MMAP_MAX` says;
/// our threads allocate rarely, the kernels use `Workspace`s), and the heap is not
/// trimmed below 1 GiB of free space. So a buffer freed and allocated again reuses
/// pages already faulted in (BENCHMARKS.md, "Data" and "estimate-acc": A0 at 224 px
/// on 5,120 images, 3.57 M page faults and 37.3 s before the mmap and arena settings,
/// 0.99 M and 33.0-36.2 s after, the rest the activation arena's first touch).
/// The cost: memory freed for good stays mapped until exit, which raises peak RSS
/// a little.
public enum ProcessMemory {
    /// Call once, first thing in `main`, before any thread starts. Idempotent.
    public static func keepFreedMemory() {
        _ = mallopt(M_ARENA_MAX, 1)
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 1 << 30)
    }
}
