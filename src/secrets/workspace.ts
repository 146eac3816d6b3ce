import { PyroError } from "../contract/errors.js";
import type { ChannelClient, ExecHandlers } from "../guest/client.js";
import { AGENT_OPS } from "../guest/ops/index.js";
import { Redactor } from "./redact.js";
import type { StoredSecret } from "./store.js";

/**
 * What the workspace, service and shell managers do with a workspace's secrets: put them
 * into the guest, and keep them out of everything that goes back to a caller.
 */

/** Runtime-only (tmpfs): never part of /workspace, diffs, archives or the state disk. */
export const GUEST_SECRETS_DIR = "/run/pyro-secrets";

/**
 * Writes each secret to /run/pyro-secrets/NAME (0600) through the agent's file write, on
 * every boot (create, start, reset): /run is a tmpfs, so a stopped VM keeps none. The
 * path is relative to the guest's `/` root so that the host-process driver's root remap
 * applies to it as to any other guest path.
 */
export async function materializeSecrets(
  client: ChannelClient,
  secrets: readonly StoredSecret[],
): Promise<void> {
  for (const secret of secrets) {
    const content = Buffer.from(secret.value, "utf8");
    await client.request(
      AGENT_OPS.file_write,
      {
        root: "/",
        path: `${GUEST_SECRETS_DIR.slice(1)}/${secret.name}`,
        size_bytes: content.length,
        mode: 0o600,
        create_parents: true,
      },
      { stdin: content },
    );
  }
}

export function redactorOf(secrets: readonly StoredSecret[]): Redactor {
  return new Redactor(secrets);
}

/**
 * Exec handlers whose streamed chunks pass through one redaction stream per output
 * stream; `finish` flushes what the streams still hold once the command has ended.
 */
export function redactingHandlers(handlers: ExecHandlers, redactor: Redactor) {
  if (redactor.empty) return { handlers, finish: (_output: unknown) => {} };
  const streams = { stdout: redactor.stream(), stderr: redactor.stream() };
  const forward = (callback: ((chunk: Buffer) => void) | undefined, out: Buffer) => {
    if (callback && out.length > 0) callback(out);
  };
  return {
    handlers: {
      ...handlers,
      onStdout: (chunk: Buffer) => forward(handlers.onStdout, streams.stdout.push(chunk)),
      onStderr: (chunk: Buffer) => forward(handlers.onStderr, streams.stderr.push(chunk)),
    } satisfies ExecHandlers,
    /** `*_truncated`: the exit record's flags (the guest cut that stream at its bound). */
    finish: (output: { stdout_truncated: boolean; stderr_truncated: boolean }) => {
      forward(handlers.onStdout, streams.stdout.end({ truncated: output.stdout_truncated }));
      forward(handlers.onStderr, streams.stderr.end({ truncated: output.stderr_truncated }));
    },
  };
}

/** Every string inside `value` (objects, arrays) redacted; other values as they are. */
export function redactStrings<T>(value: T, redactor: Redactor): T {
  if (redactor.empty) return value;
  if (typeof value === "string") return redactor.redact(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => redactStrings(item, redactor)) as T;
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, redactStrings(item, redactor)]),
    ) as T;
  }
  return value;
}

/**
 * The error with its message and details redacted. A changed error loses its `cause`,
 * whose own message may quote the same value.
 */
export function redactError(error: unknown, redactor: Redactor): unknown {
  if (redactor.empty || !(error instanceof Error)) return error;
  const message = redactor.redact(error.message);
  if (error instanceof PyroError) {
    const details = redactStrings(error.details, redactor);
    if (message === error.message && JSON.stringify(details) === JSON.stringify(error.details))
      return error;
    return new PyroError(error.code, message, { details });
  }
  return message === error.message ? error : new PyroError("internal", message);
}

/** Runs `fn`; an error it throws leaves with every secret value redacted. */
export async function withRedactedErrors<T>(redactor: Redactor, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw redactError(error, redactor);
  }
}
