/* hello's entropy: host-supplied random bytes mixed into the guest kernel's RNG. A VM
 * restored from a memory template starts with the template's RNG state, which every
 * clone shares; reseeding from fresh host bytes makes their random numbers differ. */
#ifndef PYRO_ENTROPY_H
#define PYRO_ENTROPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PYRO_ENTROPY_BYTES 64

/* Strict standard base64 (RFC 4648 alphabet, '=' padding, no whitespace, zero pad
 * bits). Decodes at most cap bytes; false when the text is not canonical base64 or
 * decodes to more than cap bytes. */
bool pyro_base64_decode(const char *text, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len);

/* Credits bytes to the kernel's pool (RNDADDENTROPY) and forces a CRNG reseed
 * (RNDRESEEDCRNG). Needs CAP_SYS_ADMIN: guest mode only. 0 or -1 with errno. */
int pyro_entropy_add(const uint8_t *bytes, size_t len);

#endif
