import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createServer } from "../../src/index.js";

/**
 * Real MCP clients against the real server over an in-memory transport, named `name`;
 * each one `connect` makes is remembered so `closeAll` can end them.
 */
export function inMemoryClients(name: string): {
  connect: (profile: "workspace-core" | "workspace-full") => Promise<Client>;
  closeAll: () => Promise<void>;
} {
  const clients: Client[] = [];
  return {
    async connect(profile) {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await createServer({ profile }).connect(serverSide);
      const client = new Client({ name, version: "0" });
      await client.connect(clientSide);
      clients.push(client);
      return client;
    },
    async closeAll() {
      for (const client of clients) await client.close();
    },
  };
}
