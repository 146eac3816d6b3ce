/* SHA-256 (FIPS 180-4), small and dependency-free: file_manifest hashes workspace files
 * with it so the host fetches only the files whose content changed. */
#ifndef PYRO_SHA256_H
#define PYRO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PYRO_SHA256_BYTES 32

struct pyro_sha256 {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes waiting in block */
};

void pyro_sha256_init(struct pyro_sha256 *h);
void pyro_sha256_update(struct pyro_sha256 *h, const void *data, size_t len);
void pyro_sha256_final(struct pyro_sha256 *h, uint8_t out[PYRO_SHA256_BYTES]);

/* Writes the 64 lowercase hex digits of digest and a NUL to out. */
void pyro_sha256_hex(const uint8_t digest[PYRO_SHA256_BYTES],
                     char out[2 * PYRO_SHA256_BYTES + 1]);

#endif
