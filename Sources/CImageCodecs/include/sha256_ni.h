#ifndef ALPHANET_SHA256_NI_H
#define ALPHANET_SHA256_NI_H
// SHA-256 block compression with the x86 SHA extensions (SHA-NI), for the
// shard digests of pack-imagenet and the checkpoint digests of estimate-acc.
// The Swift SHA256 type uses it when an_sha256_ni_available() says the CPU has
// it, and its own portable code otherwise; tests check both give the same.
#include <stddef.h>
#include <stdint.h>

/// 1 if this CPU has the SHA extensions (and the SSSE3/SSE4.1 they need here).
int an_sha256_ni_available(void);

/// Compresses `blocks` 64-byte blocks at `data` into `state` (a, b, …, h as
/// FIPS 180-4 numbers them). Only call when an_sha256_ni_available() is 1.
void an_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
