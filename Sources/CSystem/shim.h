// C declarations the System module needs that Swift's Glibc module does not offer.
#include <malloc.h>
#include <stddef.h>

// sched_getaffinity is declared by <sched.h> only under _GNU_SOURCE; declared here under
// its own name, bound to the libc symbol.
extern int csystem_sched_getaffinity(int pid, size_t size, void *mask) __asm__("sched_getaffinity");
