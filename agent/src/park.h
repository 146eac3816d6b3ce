/* Template parking (kernel argument pyro.park=1, only for memory-template builds).
 *
 * Init stops after the early mounts and before the root switch: it tells the host
 * PYRO_PARK_SIGNAL on the agent's virtio-serial port and waits for PYRO_PARK_GO. The
 * host saves the VM while it waits; every clone restored from that save wakes up here,
 * drops what the kernel cached of the template's disks and goes on with its own state
 * disk. So one template fits any state disk. Host side: src/guest/park.ts. */
#ifndef PYRO_PARK_H
#define PYRO_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PYRO_PARK_SIGNAL "PYRO-PARKED\n"
#define PYRO_PARK_GO "PYRO-GO\n"

/* Finds PYRO_PARK_GO in a byte stream; anything before it is skipped. */
struct pyro_park_matcher {
    size_t matched; /* bytes of PYRO_PARK_GO seen in a row */
};

/* Takes the next byte; true once the last byte of PYRO_PARK_GO arrived. */
bool pyro_park_feed(struct pyro_park_matcher *m, uint8_t byte);

/* Parks (see above) and flushes the virtio disks' cached blocks. Returns the agent port,
 * open and non-blocking, for the transport to serve: closing it would discard what the
 * host sent right after PYRO_PARK_GO (its hello). -1 when parking failed (logged in the
 * init errors); the boot then goes on without a port in hand. */
int pyro_park(void);

#endif
