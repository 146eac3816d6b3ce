/* Template parking (kernel argument pyro.park=1 or pyro.park=late, only for
 * memory-template builds).
 *
 * Init tells the host PYRO_PARK_SIGNAL on the agent's virtio-serial port and waits for
 * PYRO_PARK_GO; the host saves the VM while it waits, and every clone restored from that
 * save wakes up there. pyro.park=1 parks with only the read-only base mounted (it is the
 * same image for a template and its clones): a clone drops what the kernel cached of the
 * other disks and goes on with its own state disk, so one template fits any state disk.
 * pyro.park=late parks once init is done (root switched): its clones must get a byte
 * copy of the template's state disk as it was at the save. Host side: src/guest/park.ts. */
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

/* Parks (see above). Returns the agent port, open and non-blocking, for the transport to
 * serve: closing it would discard what the host sent right after PYRO_PARK_GO (its
 * hello). -1 when parking failed (logged in the init errors); the boot then goes on
 * without a port in hand. */
int pyro_park(void);

/* Drops the kernel's cached blocks (BLKFLSBUF) of every virtio disk but `keep` (a device
 * path, or NULL): after an early park the state disk is the clone's, not the template's. */
void pyro_park_flush_disks(const char *keep);

#endif
