/* PID 1 duties inside the VM: early mounts, kernel command line, root switch (see
 * rootfs.h), hostname, loopback, power off. Each failed step is logged to the console
 * and kept in init_errors (reported by hello); init goes on where it can. */
#ifndef PYRO_INIT_H
#define PYRO_INIT_H

#include <stdbool.h>
#include <stddef.h>

#define PYRO_INIT_MAX_ERRORS 32

enum pyro_park_mode {
    PYRO_PARK_NONE,
    PYRO_PARK_EARLY, /* pyro.park=1: before the state disk is touched */
    PYRO_PARK_LATE,  /* pyro.park=late: once init is done */
};

struct pyro_cmdline {
    char hostname[65];
    bool probe;               /* pyro.probe=1: acceleration probe, power off at once */
    bool state_tmpfs;         /* pyro.state=tmpfs: writable layer on tmpfs, no state disk */
    bool verbose;             /* pyro.verbose=1: debug logs on the console */
    enum pyro_park_mode park; /* memory-template builds, see park.h */
};

/* Runs every init step. Returns only when serving should start (a probe powers off):
 * the agent's virtio port if parking left it open, else -1. */
int pyro_init_run(void);

/* Parses the pyro.* keys out of a kernel command line. */
void pyro_cmdline_parse(const char *cmdline, struct pyro_cmdline *out);

/* Kills every process, syncs and powers the VM off; returns only if that failed. */
void pyro_init_power_off(void);

__attribute__((format(printf, 1, 2))) void pyro_init_error(const char *fmt, ...);
size_t pyro_init_error_count(void);
const char *pyro_init_error_at(size_t i);

#endif
