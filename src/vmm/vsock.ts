/**
 * Host-initiated vsock connections through Firecracker's Unix socket, as its docs/vsock.md
 * describes them. Tested against a fake socket that follows that document; never against
 * Firecracker itself (no binary on the project's machines).
 */
import { createConnection, type Socket } from "node:net";
import { PyroError } from "../contract/errors.js";
import { sleep } from "../util/process.js";

export interface VsockConnectOptions {
  /** Pause between attempts while nothing in the guest listens yet. @default 50 */
  retryIntervalMs?: number;
  /**
   * Bound on one attempt. Firecracker drops a request the guest has received but not
   * answered after 2000 ms (CONN_REQUEST_TIMEOUT_MS in its vsock code); before the guest's
   * vsock driver is up a request just waits, which this bound cuts short. @default 3000
   */
  attemptTimeoutMs?: number;
  /** Stops retrying (the VMM exited). */
  signal?: AbortSignal;
}

/** The reply was not Firecracker's handshake: retrying cannot help. */
class VsockProtocolError extends PyroError {}

/** One attempt got no reply within its bound. */
class AttemptTimeout extends Error {}

/**
 * Opens a host-initiated vsock connection through Firecracker's Unix socket (docs/vsock.md):
 * connect, send `CONNECT <port>\n`, read `OK <host port>\n`; after that line the socket
 * is the guest's byte stream. While the guest boots nothing listens on the port and
 * Firecracker closes the connection instead of answering, so this retries until `OK` or
 * `timeoutMs`. A reply that is not `OK <n>` fails at once.
 */
export async function connectVsock(
  udsPath: string,
  port: number,
  timeoutMs: number,
  options: VsockConnectOptions = {},
): Promise<Socket> {
  const { retryIntervalMs = 50, attemptTimeoutMs = 3_000, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let lastFailure = "no attempt";
  for (;;) {
    if (signal?.aborted) {
      throw new PyroError("unavailable", `the VMM exited before vsock port ${port} answered`);
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const cutShort = remaining < attemptTimeoutMs;
    try {
      return await vsockHandshake(udsPath, port, Math.min(attemptTimeoutMs, remaining));
    } catch (error) {
      if (error instanceof VsockProtocolError) throw error;
      // An attempt the overall deadline cut short tells nothing new: keep the reason before it.
      const tellsNothing =
        error instanceof AttemptTimeout && cutShort && lastFailure !== "no attempt";
      if (!tellsNothing) lastFailure = (error as Error).message;
    }
    await sleep(Math.max(0, Math.min(retryIntervalMs, deadline - Date.now())));
  }
  throw new PyroError(
    "timeout",
    `the guest agent did not accept vsock port ${port} within ${timeoutMs} ms (last attempt: ${lastFailure})`,
  );
}

/** "OK 4294967295\n" is 14 bytes; anything this long without a newline is not the reply. */
const MAX_HANDSHAKE_LINE = 32;

function vsockHandshake(udsPath: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(udsPath, () => socket.write(`CONNECT ${port}\n`));
    let received = Buffer.alloc(0);
    const timer = setTimeout(
      () => fail(new AttemptTimeout(`no reply in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const closedEarly = () => new Error("closed before OK (nothing listening in the guest yet)");
    // A close that races our CONNECT write surfaces as EPIPE or ECONNRESET: the same case.
    const onError = (error: NodeJS.ErrnoException) =>
      fail(error.code === "EPIPE" || error.code === "ECONNRESET" ? closedEarly() : error);
    const onClose = () => fail(closedEarly());
    const detach = () => {
      clearTimeout(timer);
      socket.off("readable", onReadable).off("error", onError).off("close", onClose);
    };
    const fail = (error: Error) => {
      detach();
      socket.destroy();
      reject(error);
    };
    // `readable` + read() rather than `data`: removing this listener leaves the stream
    // neither flowing nor paused, so whoever attaches `data` next gets every byte,
    // including those unshifted below.
    function onReadable() {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        received = Buffer.concat([received, chunk]);
        const newline = received.indexOf(0x0a);
        if (newline < 0) {
          if (received.length > MAX_HANDSHAKE_LINE) return fail(badReply(udsPath, port, received));
          continue;
        }
        const line = received.subarray(0, newline).toString("latin1");
        if (!/^OK \d+$/.test(line)) return fail(badReply(udsPath, port, received));
        detach();
        // Bytes after the OK line may come in the same chunk: they are the agent's.
        const rest = received.subarray(newline + 1);
        if (rest.length > 0) socket.unshift(rest);
        return resolve(socket);
      }
    }
    socket.on("readable", onReadable).on("error", onError).on("close", onClose);
  });
}

function badReply(udsPath: string, port: number, received: Buffer): VsockProtocolError {
  const shown = JSON.stringify(received.subarray(0, MAX_HANDSHAKE_LINE).toString("latin1"));
  return new VsockProtocolError(
    "unavailable",
    `unexpected reply to CONNECT ${port} on ${udsPath}: ${shown} (expected "OK <port>")`,
  );
}
