import type { Readable, Writable } from "node:stream";
import { HostAddresses } from "./addresses.js";
import { encodeNetFrame, NetFrameReader } from "./frame-stream.js";
import { guestFrameVerdict, type GuardPolicy } from "./guard.js";
import type { RefusalLog } from "./refusals.js";

/**
 * Allowed frames waiting for QEMU to read them. Past this the guard drops frames instead
 * of pausing its reads: QEMU writes to the filter chardev blocking, so a shim that stops
 * reading would stall the whole VM, agent channel included.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;

export interface GuestFrameRelayOptions {
  /** The chardev stream QEMU writes the guest's outgoing frames to. */
  fromGuest: Readable;
  /** The chardev stream QEMU reads allowed frames from, on their way to slirp. */
  toNetwork: Writable;
  policy: GuardPolicy;
  refusals: RefusalLog;
  /** Replaced in tests; by default the host's interfaces, re-read every 2 s. */
  hostAddresses?: HostAddresses;
}

export interface GuestFrameRelay {
  /** Published ports change as services start and stop. */
  setPublishedGuestPorts(ports: readonly number[]): void;
  /** `frames_dropped`: allowed, but QEMU was not reading (a full queue, as on a real link). */
  counters(): { frames_passed: number; frames_refused: number; frames_dropped: number };
  /** Stops reading; the streams stay open (their owner closes them). */
  close(): void;
}

/**
 * Passes the guest's frames through the guard: each allowed frame is written on, each
 * refused one is counted, logged and dropped. Frames are judged one by one, in order,
 * so nothing reaches slirp without a verdict.
 */
export function startGuestFrameRelay(options: GuestFrameRelayOptions): GuestFrameRelay {
  const policy: GuardPolicy = { ...options.policy };
  const host = options.hostAddresses ?? new HostAddresses();
  const reader = new NetFrameReader();
  let passed = 0;
  let refused = 0;
  let dropped = 0;
  const onData = (chunk: Buffer) => {
    for (const event of reader.push(chunk)) {
      if (event.kind === "oversized") {
        refused += 1;
        options.refusals.refuse("guard", "oversized", `${event.length} bytes`);
        continue;
      }
      const verdict = guestFrameVerdict(event.frame, policy, host);
      if (verdict.allow && options.toNetwork.writableLength > MAX_QUEUED_BYTES) {
        dropped += 1;
      } else if (verdict.allow) {
        passed += 1;
        options.toNetwork.write(encodeNetFrame(event.frame));
      } else {
        refused += 1;
        options.refusals.refuse("guard", verdict.reason, verdict.destination);
      }
    }
  };
  options.fromGuest.on("data", onData);
  return {
    setPublishedGuestPorts(ports) {
      policy.published_guest_ports = [...ports];
    },
    counters: () => ({ frames_passed: passed, frames_refused: refused, frames_dropped: dropped }),
    close() {
      options.fromGuest.off("data", onData);
    },
  };
}
