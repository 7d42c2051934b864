// CPU hints Swift has no spelling for, as inline functions the kernels call in
// their loops (NASCore): a software prefetch, which unlike a load retires at once.
#ifndef AN_CPU_HINTS_H
#define AN_CPU_HINTS_H

/// Asks the core to bring the cache line holding `p` towards L1 (prefetcht0).
static inline void an_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
