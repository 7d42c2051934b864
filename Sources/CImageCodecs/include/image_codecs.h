#ifndef ALPHANET_IMAGE_CODECS_H
#define ALPHANET_IMAGE_CODECS_H
// JPEG and PNG codecs for DataPipeline. libjpeg reports errors by longjmp,
// which Swift cannot catch, so every libjpeg call sits behind one of these
// functions: they catch the error with setjmp and return a status code plus a
// message. Pixel buffers come back malloc'd; free them with an_free.
#include <stddef.h>
#include <stdint.h>

enum {
    AN_OK = 0,
    AN_CORRUPT = 1,   // the codec rejected the data (message says why)
    AN_TRUNCATED = 2, // the data ends before the image does
    AN_NOMEM = 3,
    AN_TOO_LARGE = 4, // the header claims more pixels than max_pixels: nothing was decoded
};

/// Decodes a JPEG to 8-bit RGB (greyscale replicated, CMYK/YCCK converted as
/// Pillow does: R = (255-C)(255-K)/255, Adobe files stored inverted).
/// `min_short_side` > 0 enables DCT-domain downscaling by 1/2, 1/4 or 1/8: the
/// largest reduction whose shorter side is still >= min_short_side.
/// An image whose header claims more than `max_pixels` pixels is refused before any
/// pixel memory is allocated. On success *out holds width*height*3 bytes.
int an_jpeg_decode(const uint8_t *data, size_t size, int min_short_side, uint64_t max_pixels,
                   uint8_t **out, int *width, int *height,
                   int *source_width, int *source_height,
                   char *message, size_t message_size);

/// Encodes 8-bit pixels (channels 1 = grey, 3 = RGB, 4 = CMYK stored
/// Adobe-inverted) as a baseline JPEG of the given quality (1-100).
int an_jpeg_encode(const uint8_t *pixels, int width, int height, int channels,
                   int quality, uint8_t **out, size_t *out_size,
                   char *message, size_t message_size);

/// Decodes a PNG (any bit depth, palette, grey, alpha) to 8-bit RGB; alpha is dropped.
/// Refused, as for JPEG, when the header claims more than `max_pixels` pixels.
int an_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint8_t **out,
                  int *width, int *height, char *message, size_t message_size);

/// Encodes 8-bit pixels (channels 1 = grey, 3 = RGB, 4 = RGBA) as PNG.
int an_png_encode(const uint8_t *pixels, int width, int height, int channels,
                  uint8_t **out, size_t *out_size, char *message, size_t message_size);

void an_free(void *p);

/// Atomically exchanges two paths (Linux renameat2 RENAME_EXCHANGE).
/// Returns 0, or -1 with errno set (EINVAL/ENOSYS where unsupported).
int an_rename_exchange(const char *a, const char *b);

// ---- SHA-256 with the x86 SHA extensions (sha256_ni.c) ---------------------
// For the shard digests of pack-imagenet and the checkpoint digests of
// estimate-acc. The Swift SHA256 type uses it when an_sha256_ni_available()
// says the CPU has it, and its own portable code otherwise; tests check both.

/// The 64 round constants K of FIPS 180-4 (for the portable code too).
const uint32_t *an_sha256_round_constants(void);

/// 1 if this CPU has the SHA extensions (and the SSSE3/SSE4.1 they need here).
int an_sha256_ni_available(void);

/// Compresses `blocks` 64-byte blocks at `data` into `state` (a, b, …, h as
/// FIPS 180-4 numbers them). Only call when an_sha256_ni_available() is 1.
void an_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
