import type { Socket } from "node:net";
import { PyroError } from "../contract/errors.js";

/**
 * The template handshake on the agent channel (docs/architecture.md "VM state"). A guest
 * booted with `pyro.park=1` stops before mounting its root and writes `PARK_SIGNAL`; the
 * template is saved there, so one template fits every state disk. A clone restored from
 * it continues its boot once it reads `PARK_GO`, then answers `hello` as any boot does.
 */
export const PARK_SIGNAL = "PYRO-PARKED\n";
export const PARK_GO = "PYRO-GO\n";

/** Bytes a parking guest may write before its signal; more is a guest that does not park. */
export const PARK_MAX_BYTES = 64 * 1024;

/**
 * Resolves once the guest on `socket` has written `PARK_SIGNAL`. The socket is then left
 * paused, with any bytes after the signal put back (there should be none: the guest
 * waits for `PARK_GO`), so nothing is lost before the next reader calls `resume()`.
 */
export function waitParked(socket: Socket, timeoutMs: number): Promise<void> {
  const signal = Buffer.from(PARK_SIGNAL);
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const finish = (error?: Error, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("error", onClose);
      // Paused, so what arrives before the next reader attaches waits for it.
      socket.pause();
      if (rest?.length) socket.unshift(rest);
      if (error) reject(error);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const at = seen.indexOf(signal);
      if (at >= 0) return finish(undefined, seen.subarray(at + signal.length));
      if (seen.length > PARK_MAX_BYTES + signal.length)
        finish(
          new PyroError("guest_error", `the guest wrote ${PARK_MAX_BYTES} bytes without parking`),
        );
    };
    const onClose = () =>
      finish(new PyroError("unavailable", "the agent channel closed before the guest parked"));
    const timer = setTimeout(
      () => finish(new PyroError("timeout", `the guest did not park within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("error", onClose);
    socket.resume();
  });
}

/** Lets a parked guest (a template's clone) continue its boot. */
export function sendGo(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(PARK_GO, (error) => (error ? reject(error) : resolve()));
  });
}
