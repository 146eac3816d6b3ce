import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { BoundedEventStore } from "../../src/mcp/http-events.js";

const note = (n: number): JSONRPCMessage => ({
  jsonrpc: "2.0",
  method: "notifications/progress",
  params: { progressToken: 1, progress: n },
});

async function replay(store: BoundedEventStore, after: string) {
  const sent: [string, JSONRPCMessage][] = [];
  const stream = await store.replayEventsAfter(after, {
    send: (id, message) => {
      sent.push([id, message]);
      return Promise.resolve();
    },
  });
  return { stream, sent };
}

describe("SSE event store for resumable streams", () => {
  it("replays the events of the same stream after the client's last one, in order", async () => {
    const store = new BoundedEventStore();
    const a1 = await store.storeEvent("a", note(1));
    await store.storeEvent("b", note(2));
    const a3 = await store.storeEvent("a", note(3));
    const a4 = await store.storeEvent("a", note(4));
    expect(await store.getStreamIdForEventId(a1)).toBe("a");
    const { stream, sent } = await replay(store, a1);
    expect(stream).toBe("a");
    expect(sent).toEqual([
      [a3, note(3)],
      [a4, note(4)],
    ]);
  });

  it("keeps at most maxEvents and maxBytes, dropping the oldest; an evicted id resumes nothing", async () => {
    const store = new BoundedEventStore({ maxEvents: 3, maxBytes: 1_000_000 });
    const first = await store.storeEvent("a", note(0));
    for (let i = 1; i < 10; i++) await store.storeEvent("a", note(i));
    expect(store.size).toBe(3);
    expect(await store.getStreamIdForEventId(first)).toBeUndefined();
    expect((await replay(store, first)).sent).toEqual([]);
    const bytes = JSON.stringify(note(0)).length;
    const small = new BoundedEventStore({ maxEvents: 100, maxBytes: bytes * 2 });
    for (let i = 0; i < 10; i++) await small.storeEvent("a", note(i));
    expect(small.size).toBe(2);
  });

  it("keeps the newest event even when it alone is over the byte bound", async () => {
    const store = new BoundedEventStore({ maxEvents: 10, maxBytes: 10 });
    await store.storeEvent("a", note(1));
    const big = await store.storeEvent("a", note(2));
    expect(store.size).toBe(1);
    expect(await store.getStreamIdForEventId(big)).toBe("a");
  });
});
