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
/// The cost: memory freed for good stays mapped until exit, which raises peak RSS
/// a little.
public enum ProcessMemory {
    /// Call once, first thing in `main`. Idempotent.
    public static func keepFreedMemory() {
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 1 << 30)
    }
}
