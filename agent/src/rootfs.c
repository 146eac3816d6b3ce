#include "rootfs.h"

#include "init.h"
#include "log.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define EXT4_SUPERBLOCK_OFFSET 1024
#define EXT4_MAGIC_OFFSET 0x38
#define EXT4_MAGIC 0xEF53
#define EXT4_LABEL_OFFSET 0x78
#define RAMFS_MAGIC_ 0x858458f6
#define TMPFS_MAGIC_ 0x01021994
/* Block devices whose names start with this are probed for labels (virtio-blk). Tests
 * outside a VM build with -DPYRO_DISK_PREFIX='"loop"'. */
#ifndef PYRO_DISK_PREFIX
#define PYRO_DISK_PREFIX "vd"
#endif
/* Deeper initramfs trees are not ours; stop rather than recurse without bound. */
#define FREE_INITRAMFS_MAX_DEPTH 16

bool pyro_ext4_label(const uint8_t superblock[1024], char label[17])
{
    unsigned magic = superblock[EXT4_MAGIC_OFFSET] | (superblock[EXT4_MAGIC_OFFSET + 1] << 8);
    if (magic != EXT4_MAGIC)
        return false;
    memcpy(label, superblock + EXT4_LABEL_OFFSET, 16);
    label[16] = '\0';
    return true;
}

static bool read_label(const char *dev, char label[17])
{
    uint8_t sb[1024];
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LOG_ERRNO("open %s", dev);
        return false;
    }
    ssize_t n;
    do
        n = pread(fd, sb, sizeof sb, EXT4_SUPERBLOCK_OFFSET);
    while (n < 0 && errno == EINTR);
    close(fd);
    return n == (ssize_t)sizeof sb && pyro_ext4_label(sb, label);
}

/* virtio-mmio device order is not stable, so disks are found by label, not name. */
static void find_disks(char *base, char *state, size_t len)
{
    DIR *dir = opendir("/sys/block");
    if (!dir) {
        LOG_ERRNO("opendir /sys/block");
        pyro_init_error("opendir /sys/block: %s", strerror(errno));
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        if (strncmp(ent->d_name, PYRO_DISK_PREFIX, strlen(PYRO_DISK_PREFIX)) != 0)
            continue;
        char dev[300], label[17];
        snprintf(dev, sizeof dev, "/dev/%s", ent->d_name);
        if (!read_label(dev, label))
            continue;
        char *slot = strcmp(label, PYRO_BASE_LABEL) == 0    ? base
                     : strcmp(label, PYRO_STATE_LABEL) == 0 ? state
                                                            : NULL;
        if (!slot)
            continue;
        if (slot[0] != '\0') {
            LOG_WARN("%s and %s both have label %s; using %s", slot, dev, label, slot);
            continue;
        }
        snprintf(slot, len, "%s", dev);
    }
    closedir(dir);
}

static bool try_mount(const char *source, const char *target, const char *type,
                      unsigned long flags, const char *data)
{
    if (pyro_mkdir_p(target, 0755) == 0 && mount(source, target, type, flags, data) == 0)
        return true;
    LOG_ERRNO("mount %s on %s", source, target);
    pyro_init_error("mount %s on %s: %s", source, target, strerror(errno));
    return false;
}

/* The base's device once looked for ("" when there was none), and whether it is mounted. */
static char base_dev[300];
static bool base_tried, base_mounted;

bool pyro_rootfs_mount_base(void)
{
    if (base_tried)
        return base_mounted;
    base_tried = true;
    char state[300] = "";
    find_disks(base_dev, state, sizeof base_dev);
    if (base_dev[0] == '\0') {
        LOG_ERROR("no disk labelled %s; serving from the initramfs", PYRO_BASE_LABEL);
        pyro_init_error("no disk labelled %s; serving from the initramfs", PYRO_BASE_LABEL);
        return false;
    }
    base_mounted = try_mount(base_dev, "/mnt/base", "ext4", MS_RDONLY, NULL);
    return base_mounted;
}

const char *pyro_rootfs_base_device(void)
{
    return base_dev;
}

static bool mount_layers(const char *state, bool state_tmpfs)
{
    bool state_ok;
    if (state_tmpfs || state[0] == '\0') {
        if (!state_tmpfs) {
            LOG_ERROR("no disk labelled %s; the writable layer is a tmpfs", PYRO_STATE_LABEL);
            pyro_init_error("no disk labelled %s; the writable layer is a tmpfs",
                            PYRO_STATE_LABEL);
        }
        state_ok = try_mount("tmpfs", "/mnt/state", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    } else {
        state_ok = try_mount(state, "/mnt/state", "ext4", 0, NULL);
    }
    if (!state_ok)
        return false;
    if (pyro_mkdir_p("/mnt/state/upper", 0755) != 0 ||
        pyro_mkdir_p("/mnt/state/work", 0755) != 0) {
        LOG_ERRNO("mkdir /mnt/state/upper, /mnt/state/work");
        pyro_init_error("mkdir /mnt/state/upper, /mnt/state/work: %s", strerror(errno));
        return false;
    }
    return try_mount("overlay", "/newroot", "overlay", 0,
                     "lowerdir=/mnt/base,upperdir=/mnt/state/upper,workdir=/mnt/state/work");
}

static void move_onto_newroot(const char *from, const char *to)
{
    if (pyro_mkdir_p(to, 0755) == 0 && mount(from, to, NULL, MS_MOVE, NULL) == 0)
        return;
    LOG_ERRNO("move mount %s to %s", from, to);
    pyro_init_error("move mount %s to %s: %s", from, to, strerror(errno));
}

/* Deletes the initramfs contents, as switch_root does, so its memory is freed. It
 * never crosses into another filesystem: anything with a different st_dev (the new
 * root, moved mounts) is left alone. Takes ownership of dirfd. */
static void free_initramfs(int dirfd, dev_t root_dev, int depth)
{
    DIR *dir = fdopendir(dirfd);
    if (!dir) {
        close(dirfd);
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        const char *name = ent->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != root_dev)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = depth < FREE_INITRAMFS_MAX_DEPTH
                          ? openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                          : -1;
            if (sub >= 0)
                free_initramfs(sub, root_dev, depth + 1);
        }
        if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0)
            LOG_ERRNO("remove initramfs file %s", name);
    }
    closedir(dir);
}

static void switch_root(void)
{
    struct statfs sfs;
    struct stat root;
    if (statfs("/", &sfs) != 0 || stat("/", &root) != 0 ||
        (sfs.f_type != RAMFS_MAGIC_ && sfs.f_type != TMPFS_MAGIC_)) {
        LOG_ERROR("/ is not an initramfs; not switching root");
        pyro_init_error("/ is not an initramfs; not switching root");
        return;
    }
    move_onto_newroot("/dev", "/newroot/dev");
    move_onto_newroot("/proc", "/newroot/proc");
    move_onto_newroot("/sys", "/newroot/sys");
    move_onto_newroot("/run", "/newroot/run");
    move_onto_newroot("/mnt/base", "/newroot/run/pyro/base");
    move_onto_newroot("/mnt/state", "/newroot/run/pyro/state");
    if (chdir("/newroot") != 0) {
        LOG_ERRNO("chdir /newroot");
        pyro_init_error("chdir /newroot: %s", strerror(errno));
        return;
    }
    int rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd >= 0)
        free_initramfs(rootfd, root.st_dev, 0);
    /* pivot_root(2) cannot take the initial rootfs away: move the new root over it. */
    if (mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) {
        LOG_ERRNO("switch root");
        pyro_init_error("switch root: %s", strerror(errno));
        return;
    }
    LOG_DEBUG("switched root to the overlay");
}

void pyro_rootfs_setup(bool state_tmpfs)
{
    if (!pyro_rootfs_mount_base())
        return;
    /* Looked up again: a parked template's clone has a state disk of its own. */
    char base[300] = "", state[300] = "";
    find_disks(base, state, sizeof base);
    if (!mount_layers(state, state_tmpfs)) {
        LOG_ERROR("no overlay root; serving from the initramfs");
        return;
    }
    switch_root();
}
