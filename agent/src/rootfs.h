/* Finding the disks by ext4 label, building the overlay root and switching into it. */
#ifndef PYRO_ROOTFS_H
#define PYRO_ROOTFS_H

#include <stdbool.h>
#include <stdint.h>

#define PYRO_BASE_LABEL "pyro-base"
#define PYRO_STATE_LABEL "pyro-state"

/* Reads the volume label out of an ext4 superblock (the 1024 bytes at offset 1024 of
 * the device). Returns false if the magic number is not ext2/3/4's. */
bool pyro_ext4_label(const uint8_t superblock[1024], char label[17]);

/* Finds the disks and mounts the read-only base on /mnt/base (once; later calls say how
 * the first went). A parking init does this before it parks (park.h). */
bool pyro_rootfs_mount_base(void);

/* The base's device ("/dev/vda"), "" when none was found or before the lookup. */
const char *pyro_rootfs_base_device(void);

/* Mounts the base (unless done already) and the state layer, builds the overlay at
 * /newroot and switches root into it. With no base disk it logs that and leaves the
 * initramfs as root. */
void pyro_rootfs_setup(bool state_tmpfs);

#endif
