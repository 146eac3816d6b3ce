#!/usr/bin/env node
/**
 * The per-VM supervisor process: `node shim/main.js VM_DIR`. Started detached by the
 * manager; its stdout/stderr go to VM_DIR/shim.log.
 *
 * It listens for clients and starts the VMM before it loads the supervisor: only the launch
 * config, the socket, the driver and `vmm-start.ts` load first (tens of ms), and the supervisor with zod and the protocol
 * schemas (over 100 ms more of CPU) loads once the VMM runs, while the guest boots or (a
 * template's clone) mounts its root. Loading it meanwhile would not help: the launch's
 * own steps (files, cgroup, QMP) would wait behind the module loads on this one thread,
 * measured as QEMU spawning after the load, not before it (issue 10, "Start-up cost").
 */
import { readFile } from "node:fs/promises";
import { createDriver } from "../vmm/select.js";
import { listenForClients } from "./client-listener.js";
import { vmFiles, type ShimLaunchConfig } from "./launch.js";
import { startVmm } from "./vmm-start.js";

/** The longest the supervisor's load waits for the VMM's launch. */
const HEAD_START_MAX_MS = 2_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: shim VM_DIR\n");
    process.exit(2);
  }
  process.umask(0o077);
  const config = JSON.parse(await readFile(vmFiles(dir).launch, "utf8")) as ShimLaunchConfig;
  // Clients may connect from now on; they wait, unread, for the supervisor.
  const clients = await listenForClients(vmFiles(dir).socket);
  const driver = await createDriver(config.vmm);
  // A VM with a NIC needs the network's modules before its VMM starts: no head start.
  // A signal before the supervisor exists ends this process, and the VMM with it
  // (it runs under pdeathsig); the manager reconciles that as a dead shim.
  const earlyStart = config.network ? undefined : startVmm(driver, dir, config);
  // Bounded: connected clients wait for the supervisor (the manager's claim and
  // wait_ready), and a restore on a loaded host may take longer than a head start is worth.
  if (earlyStart) await Promise.race([earlyStart.handle.catch(() => {}), sleep(HEAD_START_MAX_MS)]);
  const { Supervisor } = await import("./supervisor.js");
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const supervisor = new Supervisor(dir, config, driver, log, { clients, vmm: earlyStart });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(
      signal,
      () => void supervisor.end({ remove: config.delete_on_exit, reason: signal }),
    );
  }
  // A VM can end while boot still waits on it (the VMM died): the shim exits then too.
  const running = supervisor.run();
  await Promise.race([running.then(() => supervisor.ended), supervisor.ended]);
  // Clients may still hold connections; the VM is gone, so the shim goes too.
  setTimeout(() => process.exit(0), 50).unref();
}

main().catch((error: unknown) => {
  process.stderr.write(`shim failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
