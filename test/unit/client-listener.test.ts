import { once } from "node:events";
import { statSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listenForClients } from "../../src/shim/client-listener.js";
import { tempDir } from "../helpers/temp.js";

describe("the shim's client socket before the supervisor loads", () => {
  it("keeps what early clients sent until a handler takes them, then hands new ones at once", async () => {
    const path = join(tempDir("pyro-listener-"), "shim.sock");
    const listener = await listenForClients(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const early = createConnection(path);
    await once(early, "connect");
    early.write("claim");
    // Nothing reads yet: the bytes wait in the socket.
    await new Promise((r) => setTimeout(r, 50));
    const received: string[] = [];
    const handed: Socket[] = [];
    listener.accept((socket) => {
      handed.push(socket);
      socket.on("data", (chunk: Buffer) => received.push(chunk.toString()));
    });
    expect(handed).toHaveLength(1);
    const late = createConnection(path);
    await once(late, "connect");
    late.write("status");
    await expect.poll(() => received.sort()).toEqual(["claim", "status"]);
    expect(handed).toHaveLength(2);
    for (const socket of [early, late, ...handed]) socket.destroy();
    listener.server.close();
  });
});
