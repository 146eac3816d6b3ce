import { createConnection, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PARK_GO, PARK_MAX_BYTES, PARK_SIGNAL, sendGo, waitParked } from "../../src/guest/park.js";
import { tempDir } from "../helpers/temp.js";

/** Both ends of a local stream connection: `guest` writes, `host` is what waitParked reads. */
async function channel(): Promise<{ host: Socket; guest: Socket }> {
  const path = join(tempDir("pyro-park-unit-"), "s");
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const host = createConnection(path);
  const guest = await accepted;
  server.close();
  opened.push(host, guest);
  return { host, guest };
}

const opened: Socket[] = [];
afterEach(() => {
  for (const socket of opened.splice(0)) socket.destroy();
});

function read(socket: Socket, bytes: number): Promise<string> {
  return new Promise((resolve) => {
    let seen = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      if (seen.length >= bytes) resolve(seen.toString("latin1"));
    });
  });
}

describe("template parking handshake", () => {
  it("finds the signal after console-like noise and split across writes", async () => {
    const { host, guest } = await channel();
    const parked = waitParked(host, 5_000);
    guest.write("noise PYRO-PARK");
    await new Promise((r) => setTimeout(r, 10));
    guest.write("ED\n");
    await expect(parked).resolves.toBeUndefined();
  });

  it("puts bytes that follow the signal back for the next reader", async () => {
    const { host, guest } = await channel();
    const parked = waitParked(host, 5_000);
    guest.write(`${PARK_SIGNAL}after`);
    await parked;
    expect(host.isPaused()).toBe(true);
    const after = read(host, 5);
    host.resume();
    await expect(after).resolves.toBe("after");
  });

  it("a guest that writes too much without parking is refused", async () => {
    const { host, guest } = await channel();
    const parked = waitParked(host, 5_000);
    guest.write(Buffer.alloc(PARK_MAX_BYTES + 100, "x"));
    await expect(parked).rejects.toMatchObject({ code: "guest_error" });
  });

  it("a channel that closes first, or a guest that never parks, is an error", async () => {
    const closing = await channel();
    const parked = waitParked(closing.host, 5_000);
    closing.guest.end();
    await expect(parked).rejects.toMatchObject({ code: "unavailable" });

    const silent = await channel();
    await expect(waitParked(silent.host, 30)).rejects.toMatchObject({ code: "timeout" });
  });

  it("sendGo writes exactly the go bytes", async () => {
    const { host, guest } = await channel();
    const got = read(guest, PARK_GO.length);
    await sendGo(host);
    await expect(got).resolves.toBe("PYRO-GO\n");
  });
});
