import { exec } from "./exec.js";
import { fileDelete, fileList, fileManifest, fileRead, fileWrite, mkdir } from "./files.js";
import { netConfigure } from "./net.js";
import type { AnyOp, OutputPolicy } from "./op.js";
import { serviceList, serviceLogs, serviceStart, serviceStop } from "./services.js";
import { shellClose, shellList, shellOpen, shellRead, shellSignal, shellWrite } from "./shells.js";
import {
  shimClaim,
  shimFork,
  shimNetworkInfo,
  shimPause,
  shimPublishPort,
  shimStatus,
  shimStop,
  shimUnpublishPort,
  shimWaitReady,
} from "./shim.js";
import { hello, shutdown, signal } from "./system.js";

/**
 * Every op of the framed protocol, one definition each (request schema, terminal-frame
 * schema, output bounds): the agent's, documented in protocol/README.md, and the shim's.
 * Send one with `ChannelClient.request(AGENT_OPS.service_list, {})`.
 */
export const AGENT_OPS = {
  hello,
  shutdown,
  signal,
  exec,
  file_list: fileList,
  file_manifest: fileManifest,
  file_read: fileRead,
  file_write: fileWrite,
  file_delete: fileDelete,
  mkdir,
  service_start: serviceStart,
  service_list: serviceList,
  service_stop: serviceStop,
  service_logs: serviceLogs,
  shell_open: shellOpen,
  shell_read: shellRead,
  shell_write: shellWrite,
  shell_signal: shellSignal,
  shell_close: shellClose,
  shell_list: shellList,
  net_configure: netConfigure,
} as const;

export const SHIM_OPS = {
  status: shimStatus,
  wait_ready: shimWaitReady,
  claim: shimClaim,
  stop: shimStop,
  pause: shimPause,
  fork: shimFork,
  network_info: shimNetworkInfo,
  publish_port: shimPublishPort,
  unpublish_port: shimUnpublishPort,
} as const;

const BY_NAME = new Map<string, AnyOp>(
  [...Object.values(AGENT_OPS), ...Object.values(SHIM_OPS)].map((op) => [op.name, op]),
);

/** The definition of the op a message names, if it is one of ours (a Map: no prototype keys). */
export function opNamed(name: unknown): AnyOp | undefined {
  return typeof name === "string" ? BY_NAME.get(name) : undefined;
}

/**
 * Bounds of an op this host does not know (a newer client's, forwarded by the shim): its
 * stdout is capped like a listing and stderr is dropped, as before ops had definitions.
 */
export const UNKNOWN_OP_OUTPUT: OutputPolicy = {
  stdoutCap: () => 64 << 20,
  stderrCap: () => 0,
};

export * from "./exec.js";
export * from "./files.js";
export * from "./net.js";
export * from "./op.js";
export * from "./services.js";
export * from "./shells.js";
export * from "./shim.js";
export * from "./system.js";
