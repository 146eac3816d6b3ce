/**
 * Guest kernel arguments every pyro guest gets, whatever the VMM: a quiet boot on the one
 * serial port (`console=ttyS0`, the console log), the agent as init from the initramfs,
 * and no clock calibration the guest does not need.
 */
export const GUEST_KERNEL_ARGS = [
  "quiet",
  "loglevel=3",
  "8250.nr_uarts=1",
  "no_timer_check",
  "tsc=reliable",
  "rdinit=/init",
];

/**
 * QEMU: `reboot=t` with `-no-reboot` makes a guest reboot end the QEMU process;
 * `panic=-1` turns a panic into that reboot.
 */
export const QEMU_KERNEL_ARGS = ["console=ttyS0", "reboot=t", "panic=-1", ...GUEST_KERNEL_ARGS];

/**
 * Firecracker (its getting-started boot args, docs/getting-started.md): it exits when the
 * guest resets the CPU through the keyboard controller (`reboot=k`), so a panic reboots
 * after 1 s (`panic=1`); it has no PCI bus (`pci=off`). The i8042 options skip the few tens
 * of ms the guest's i8042 driver spends probing (docs/api_requests/actions.md).
 */
export const FIRECRACKER_KERNEL_ARGS = [
  "console=ttyS0",
  "reboot=k",
  "panic=1",
  "pci=off",
  "i8042.noaux",
  "i8042.nomux",
  "i8042.nopnp",
  "i8042.dumbkbd",
  ...GUEST_KERNEL_ARGS,
];
