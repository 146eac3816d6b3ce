import { createConnection, type Socket } from "node:net";

/** A QMP reply larger than this is not QEMU talking to us: the connection is dropped. */
const QMP_LINE_LIMIT = 1024 * 1024;

/** QEMU's reply to a failed command: `{"error": {"class": ..., "desc": ...}}`. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${desc || errorClass}`);
  }
}

/**
 * Just enough of QEMU's QMP to control a VM: capabilities handshake, then commands whose
 * replies come back in the order they were sent. QEMU connects to us (we listen) so no
 * polling for its socket is needed.
 */
export class QmpClient {
  private buffer = "";
  private waiters: { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] =
    [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("error", () => socket.destroy());
    // One listener for the connection's end, not one per command: a VM polled for its
    // migration status sends hundreds of commands.
    socket.on("close", () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0))
        waiter.reject(new Error("QMP connection closed"));
    });
    socket.on("data", (chunk: string) => this.onData(chunk));
  }

  static async attach(socket: Socket): Promise<QmpClient> {
    const client = new QmpClient(socket);
    await client.next(); // greeting
    await client.execute("qmp_capabilities");
    return client;
  }

  static connect(path: string): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => QmpClient.attach(socket).then(resolve, reject));
      socket.once("error", reject);
    });
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next();
    this.socket.write(`${JSON.stringify({ execute: command, arguments: args })}\n`);
    const message = await reply;
    if ("error" in message) {
      const error = (message.error ?? {}) as { class?: unknown; desc?: unknown };
      throw new QmpError(command, String(error.class ?? ""), String(error.desc ?? ""));
    }
    return message.return;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (!line) continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // QEMU speaks JSON; anything else is noise, never a crash
      }
      if ("event" in message) continue;
      this.waiters.shift()?.resolve(message);
    }
    if (this.buffer.length > QMP_LINE_LIMIT) this.socket.destroy();
  }

  private next(): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error("QMP connection closed"));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
