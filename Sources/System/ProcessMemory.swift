import CSystem

/// How the process's allocator treats freed memory.
///
/// glibc returns freed memory to the system eagerly: blocks of 128 KiB and more
/// are fresh `mmap`s, and the top of the heap is trimmed once 128 KiB is free.
/// Our tools allocate and free the same large buffers over and over (activations
/// every batch, decoded images every file), so each one came back as new pages,
/// faulted in and zeroed by the kernel again. `keepFreedMemory()` makes glibc
/// keep them: blocks up to 32 MiB (its maximum) come from the heap and the heap
/// is not trimmed below 1 GiB of free space, so a buffer freed and allocated again
/// reuses pages already faulted in (BENCHMARKS.md, "Data").
/// Blocks above 32 MiB (a shard of 224 px images read and decompressed, an image
/// batch) would still be `mmap`s, so no block comes from `mmap` at all
/// (`M_MMAP_MAX` 0, PyTorch's tuned setting `MALLOC_MMAP_MAX_=0`), and every thread
/// allocates from the main heap (`M_ARENA_MAX` 1: a thread's own arena falls back to
/// `mmap` for blocks larger than its 64 MiB heaps whatever `M_MMAP_MAX` says). Our
/// threads allocate rarely (the kernels use `Workspace`s), so the one lock costs
/// nothing measurable. estimate-acc, A0 at 224 px on 5,120 images: 3.57 M page faults
/// and 37.3 s before, 0.99 M and 32.7 s after (the rest is the activation arena's
/// first touch).
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
