import { chmod } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";

/**
 * The shim's socket for its clients, listening before the supervisor that serves them is
 * loaded (`shim/main.ts`): a client that connects early (the manager that spawned the
 * shim, to claim the VM and wait for it) waits in the kernel's and the socket's buffers,
 * and is handed over once there is a handler. So the manager is connected before the VMM
 * starts, as it was when the shim loaded everything first, and hears a boot that fails
 * at once instead of finding a shim that has already cleaned up and gone.
 */
export interface ClientListener {
  readonly server: Server;
  /** From now on connections go to `handler`, the ones that waited first. */
  accept(handler: (socket: Socket) => void): void;
}

/** Listens on `path` (mode 0600); connections wait until {@link ClientListener.accept}. */
export async function listenForClients(path: string): Promise<ClientListener> {
  const waiting: Socket[] = [];
  let handler: ((socket: Socket) => void) | undefined;
  const server = createServer((socket) => {
    if (handler) return handler(socket);
    // Unread until handed over; an error meanwhile must not end the process.
    socket.on("error", () => socket.destroy());
    waiting.push(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, resolve);
  });
  await chmod(path, 0o600);
  return {
    server,
    accept(next) {
      handler = next;
      for (const socket of waiting.splice(0)) if (!socket.destroyed) next(socket);
    },
  };
}
