import { createConnection, type Socket } from "node:net";

/**
 * Just enough of QEMU's QMP to control a VM: capabilities handshake, then one command
 * at a time. QEMU connects to us (we listen) so no polling for its socket is needed.
 */
export class QmpClient {
  private buffer = "";
  private waiters: ((message: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: string) => {
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
        this.waiters.shift()?.(message);
      }
    });
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
    if ("error" in message) throw new Error(`QMP ${command}: ${JSON.stringify(message.error)}`);
    return message.return;
  }

  close(): void {
    this.socket.destroy();
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve);
      this.socket.once("close", () => reject(new Error("QMP connection closed")));
    });
  }
}
