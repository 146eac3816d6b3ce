import type { EventStore } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

/** Bounds on what one session keeps for replay: a tool result can be megabytes. */
export interface EventBounds {
  /** @default 1000 */
  maxEvents: number;
  /** Serialized JSON bytes. @default 8 MiB */
  maxBytes: number;
}

const DEFAULT_BOUNDS: EventBounds = { maxEvents: 1000, maxBytes: 8 * 1024 * 1024 };

/**
 * One session's recent SSE events, so a client whose stream dropped during a long
 * `vm_run` can reconnect with `Last-Event-ID` and still get the result (resumability of
 * the Streamable HTTP transport). Oldest events go first once a bound is reached; a
 * client resuming from an evicted event gets the SDK's 400 and must call again.
 */
export class BoundedEventStore implements EventStore {
  private readonly events = new Map<
    string,
    { streamId: string; message: JSONRPCMessage; bytes: number }
  >();
  private next = 0;
  private bytes = 0;

  constructor(private readonly bounds: EventBounds = DEFAULT_BOUNDS) {}

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const eventId = String(++this.next);
    const bytes = JSON.stringify(message).length;
    this.events.set(eventId, { streamId, message, bytes });
    this.bytes += bytes;
    for (const [id, event] of this.events) {
      if (this.events.size <= this.bounds.maxEvents && this.bytes <= this.bounds.maxBytes) break;
      if (id === eventId) break; // the newest event is always kept, whatever its size
      this.events.delete(id);
      this.bytes -= event.bytes;
    }
    return Promise.resolve(eventId);
  }

  getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return Promise.resolve(this.events.get(eventId)?.streamId);
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const streamId = this.events.get(lastEventId)?.streamId;
    if (streamId === undefined) return "";
    let after = false;
    for (const [id, event] of [...this.events]) {
      if (after && event.streamId === streamId) await send(id, event.message);
      if (id === lastEventId) after = true;
    }
    return streamId;
  }

  /** Events kept now (for tests and bounds checks). */
  get size(): number {
    return this.events.size;
  }
}
