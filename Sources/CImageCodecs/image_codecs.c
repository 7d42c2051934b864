#define _GNU_SOURCE
#include "image_codecs.h"
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

void an_free(void *p) { free(p); }

int an_rename_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

// ---- JPEG ----------------------------------------------------------------

struct an_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    char *message;
    size_t message_size;
};

static void an_jpeg_error_exit(j_common_ptr cinfo) {
    struct an_jpeg_error *err = (struct an_jpeg_error *)cinfo->err;
    if (err->message && err->message_size > 0) {
        char buffer[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, buffer);
        snprintf(err->message, err->message_size, "%s", buffer);
    }
    longjmp(err->jump, 1);
}

// Warnings (level -1) are not errors, except "premature end of JPEG file":
// libjpeg then pads the image with grey, which we refuse like Pillow does.
static void an_jpeg_emit_message(j_common_ptr cinfo, int level) {
    struct an_jpeg_error *err = (struct an_jpeg_error *)cinfo->err;
    if (level < 0) {
        err->pub.num_warnings++;
        if (err->pub.msg_code == JWRN_JPEG_EOF) err->truncated = 1;
    }
}

static void an_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void an_set_message(char *message, size_t size, const char *text) {
    if (message && size > 0) snprintf(message, size, "%s", text);
}

int an_jpeg_decode(const uint8_t *data, size_t size, int min_short_side, uint64_t max_pixels,
                   uint8_t **out, int *width, int *height,
                   int *source_width, int *source_height,
                   char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    struct an_jpeg_error err;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    *out = NULL;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = an_jpeg_error_exit;
    err.pub.emit_message = an_jpeg_emit_message;
    err.pub.output_message = an_jpeg_output_message;
    err.message = message;
    err.message_size = message_size;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return err.truncated ? AN_TRUNCATED : AN_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    *source_width = (int)cinfo.image_width;
    *source_height = (int)cinfo.image_height;
    if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(message, message_size, "%ux%u is above the limit of %llu pixels",
                 cinfo.image_width, cinfo.image_height, (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return AN_TOO_LARGE;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;
    if (min_short_side > 0) {
        unsigned short_side = cinfo.image_width < cinfo.image_height ? cinfo.image_width : cinfo.image_height;
        unsigned denom = 1;
        while (denom < 8 && (short_side + 2 * denom - 1) / (2 * denom) >= (unsigned)min_short_side) denom *= 2;
        cinfo.scale_num = 1;
        cinfo.scale_denom = denom;
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, c = cinfo.output_components;
    pixels = malloc((size_t)w * h * 3);
    if (cmyk) row = malloc((size_t)w * c);
    if (!pixels || (cmyk && !row)) {
        an_set_message(message, message_size, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return AN_NOMEM;
    }
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        if (err.truncated) break;
        uint8_t *dst = pixels + (size_t)cinfo.output_scanline * w * 3;
        if (!cmyk) {
            // Several rows a call: one row at a time pays libjpeg's per-call work and its
            // row buffering for upsampled chroma on every row (BENCHMARKS.md, "Data").
            JSAMPROW rows[16];
            int n = (int)(cinfo.output_height - cinfo.output_scanline);
            if (n > 16) n = 16;
            for (int k = 0; k < n; k++) rows[k] = dst + (size_t)k * w * 3;
            jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)n);
        } else {
            JSAMPROW rows[1] = {row};
            jpeg_read_scanlines(&cinfo, rows, 1);
            for (int x = 0; x < w; x++) {
                // Adobe CMYK is stored inverted: the stored value is 255 - ink.
                int k = inverted ? row[4 * x + 3] : 255 - row[4 * x + 3];
                for (int ch = 0; ch < 3; ch++) {
                    int v = inverted ? row[4 * x + ch] : 255 - row[4 * x + ch];
                    dst[3 * x + ch] = (uint8_t)((v * k + 127) / 255);
                }
            }
        }
    }
    if (err.truncated) {
        an_set_message(message, message_size, "premature end of JPEG data");
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return AN_TRUNCATED;
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (err.truncated) {
        an_set_message(message, message_size, "premature end of JPEG data");
        free(pixels);
        return AN_TRUNCATED;
    }
    *out = pixels;
    *width = w;
    *height = h;
    return AN_OK;
}

int an_jpeg_encode(const uint8_t *pixels, int width, int height, int channels,
                   int quality, uint8_t **out, size_t *out_size,
                   char *message, size_t message_size) {
    struct jpeg_compress_struct cinfo;
    struct an_jpeg_error err;
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    *out = NULL;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = an_jpeg_error_exit;
    err.pub.output_message = an_jpeg_output_message;
    err.message = message;
    err.message_size = message_size;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return AN_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    unsigned char *mem = NULL;
    jpeg_mem_dest(&cinfo, &mem, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    if (channels == 4) {
        jpeg_set_colorspace(&cinfo, JCS_CMYK);
        cinfo.write_Adobe_marker = TRUE;
    }
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {(JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * channels)};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    buffer = mem;
    jpeg_destroy_compress(&cinfo);
    // jpeg_mem_dest allocates with malloc, so the caller frees with an_free.
    *out = buffer;
    *out_size = size;
    return AN_OK;
}

// ---- PNG (libpng's simplified API: no longjmp crosses this file) -----------

int an_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, uint8_t **out,
                  int *width, int *height, char *message, size_t message_size) {
    png_image image;
    *out = NULL;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        an_set_message(message, message_size, image.message);
        return AN_CORRUPT;
    }
    if ((uint64_t)image.width * image.height > max_pixels) {
        snprintf(message, message_size, "%ux%u is above the limit of %llu pixels",
                 (unsigned)image.width, (unsigned)image.height, (unsigned long long)max_pixels);
        png_image_free(&image);
        return AN_TOO_LARGE;
    }
    image.format = PNG_FORMAT_RGB;
    size_t bytes = PNG_IMAGE_SIZE(image);
    uint8_t *pixels = malloc(bytes);
    if (!pixels) {
        png_image_free(&image);
        an_set_message(message, message_size, "out of memory");
        return AN_NOMEM;
    }
    // Alpha is composited onto black (background NULL would need a linear
    // format); ImageNet has no transparent images that matter here.
    png_color background = {0, 0, 0};
    if (!png_image_finish_read(&image, &background, pixels, 0, NULL)) {
        an_set_message(message, message_size, image.message);
        free(pixels);
        png_image_free(&image);
        return strstr(image.message, "end") || strstr(image.message, "truncat") ? AN_TRUNCATED : AN_CORRUPT;
    }
    *out = pixels;
    *width = (int)image.width;
    *height = (int)image.height;
    return AN_OK;
}

int an_png_encode(const uint8_t *pixels, int width, int height, int channels,
                  uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    png_image image;
    *out = NULL;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        an_set_message(message, message_size, image.message);
        return AN_CORRUPT;
    }
    uint8_t *buffer = malloc(size);
    if (!buffer) return AN_NOMEM;
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        an_set_message(message, message_size, image.message);
        free(buffer);
        return AN_CORRUPT;
    }
    *out = buffer;
    *out_size = size;
    return AN_OK;
}
