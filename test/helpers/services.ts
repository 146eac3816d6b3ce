import type { Pyro, PyroError } from "../../src/index.js";
import { sleep } from "../../src/util/process.js";

/** The PyroError the promise rejects with; undefined when it resolves. */
export const errorOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as PyroError,
  );

/** The service's record once it is no longer running, polled every pollMs (50 polls at most). */
export async function recordAfterRunning(
  pyro: Pyro,
  service: { workspace_id: string; service_name: string },
  pollMs: number,
) {
  let record = await pyro.statusService(service);
  for (let i = 0; i < 50 && record.state === "running"; i += 1) {
    await sleep(pollMs);
    record = await pyro.statusService(service);
  }
  return record;
}
