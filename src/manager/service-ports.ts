import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type { ActivePublishedPort, PublishedPort } from "../contract/services.js";
import type { ServiceAgent } from "./service-agent.js";
import type { WorkspaceRecord } from "./workspace-store.js";

type Requested = z.output<typeof PublishedPort>;
type Published = z.output<typeof ActivePublishedPort>;

/** Published ports need the policy that allows them: refused before any guest work. */
export function refuseUnpublishable(ports: Requested[], workspace: WorkspaceRecord): void {
  if (ports.length === 0 || workspace.network_policy === "egress+published-ports") return;
  throw new PyroError(
    "invalid_argument",
    `published_ports need network_policy "egress+published-ports"; workspace ${workspace.workspace_id} has "${workspace.network_policy}". Create a workspace with --network-policy egress+published-ports`,
    { details: { field: "published_ports", network_policy: workspace.network_policy } },
  );
}

/** The same host port twice in one request can never work: refused up front. */
export function refuseDuplicateHostPorts(ports: Requested[]): void {
  const seen = new Set<number>();
  for (const { host_port } of ports) {
    if (host_port === undefined) continue;
    if (seen.has(host_port))
      throw new PyroError("invalid_argument", `host port ${host_port} is published twice`, {
        details: { field: "published_ports", host_port },
      });
    seen.add(host_port);
  }
}

/** Publishes every port or none: a failure removes the ones already made. */
export async function publishAll(agent: ServiceAgent, ports: Requested[]): Promise<Published[]> {
  const made: Published[] = [];
  try {
    for (const port of ports)
      made.push(await agent.publish(port.guest_port, port.host_port ?? null));
    return made;
  } catch (error) {
    await unpublishAll(agent, made);
    throw error;
  }
}

/** Removes forwards; never throws (the service is stopping either way). */
export async function unpublishAll(agent: ServiceAgent, ports: readonly Published[]) {
  for (const port of ports) await agent.unpublish(port.host_port).catch(() => {});
}
