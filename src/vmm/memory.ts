import { open, rm } from "node:fs/promises";

const MIB = 1024 * 1024;

/** The size a VM's RAM file must have: exactly its memory, or QEMU maps the wrong thing. */
export function memoryFileBytes(memMib: number): number {
  return memMib * MIB;
}

/**
 * Creates a VM's RAM file (QEMU `memory-backend-file`, `share=on`) unless it exists:
 * sparse, so a fresh VM costs no disk until its guest touches a page. An existing file
 * is kept (it holds a paused VM's memory or a template's copy; the driver checks its
 * size) unless `fresh`: a cold boot starts from empty RAM, not a previous run's pages,
 * and gives their disk space back.
 */
export async function createMemoryFile(
  path: string,
  memMib: number,
  options: { fresh?: boolean } = {},
): Promise<void> {
  if (options.fresh) await rm(path, { force: true });
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return;
    throw error;
  }
  try {
    await handle.truncate(memoryFileBytes(memMib));
  } catch (error) {
    await handle.close();
    await rm(path, { force: true });
    throw error;
  }
  await handle.close();
}
