import { rm } from "node:fs/promises";
import { runChecked } from "../util/process.js";

/**
 * A VM's writable layer as a file: one sparse ext4 image the guest agent finds by its
 * label. Below the core, so the template builder (`vmstate/`) makes the same disk as a
 * boot (`manager/boot.ts`) and a host-built workspace disk (`manager/state-disk.ts`).
 */

/** Sparse, so only what the guest writes takes host disk. */
export const STATE_DISK_BYTES = 8 * 2 ** 30;
/** mkfs.ext4's size argument for {@link STATE_DISK_BYTES} (a bare number means KiB). */
export const STATE_DISK_SIZE = `${STATE_DISK_BYTES / 2 ** 30}G`;
/** The guest agent finds the disk by this label. */
export const STATE_DISK_LABEL = "pyro-state";

/** mkfs.ext4 arguments of a state disk at `path`, filled from `stage` when given. */
export function stateDiskMkfsArgs(path: string, stage?: string): string[] {
  return [
    "-q",
    "-F",
    "-L",
    STATE_DISK_LABEL,
    "-E",
    "lazy_itable_init=1,lazy_journal_init=1",
    ...(stage ? ["-d", stage] : []),
    path,
    STATE_DISK_SIZE,
  ];
}

/** A fresh, empty state disk at `path` (whatever was there goes). */
export async function createStateDiskFile(path: string): Promise<void> {
  await rm(path, { force: true });
  await runChecked("create the VM's state disk", "mkfs.ext4", stateDiskMkfsArgs(path));
}
