/**
 * What one MCP session over HTTP may see and what it leaves behind (docs/integrations.md,
 * "Sessions over HTTP"). Several clients share one server there, so:
 *
 * - A session sees the VMs and workspaces it created, plus any whose id it has passed to a
 *   tool: `workspace_list` (and `vm_reap_expired`'s report) show only those. Ids are 48
 *   random bits, so an id works as a capability: knowing it is the permission to use it.
 * - When a session ends (the client's DELETE, an idle timeout, the server stopping),
 *   what it created is deleted, unless another live session has used its id since: that
 *   is how a VM or workspace is handed off. It is deleted when its last holder ends.
 * - Things no session created (made with the CLI or SDK) are never deleted by a session,
 *   even when a session used them.
 */
import { isPyroError } from "../contract/errors.js";

type Kind = "vm" | "workspace";

/** `kind:id`, so a VM and a workspace can never be mistaken for each other. */
type Ref = `${Kind}:${string}`;

/** Tools whose result names something new the session now owns. */
const CREATES: Readonly<Record<string, Kind>> = {
  vm_create: "vm",
  workspace_create: "workspace",
  workspace_fork: "workspace",
};

/** Tools after which the thing named in their arguments no longer exists. */
const DELETES: Readonly<Record<string, Kind>> = {
  vm_delete: "vm",
  vm_exec: "vm",
  workspace_delete: "workspace",
};

/** Deletes a VM or workspace on behalf of a session that ended. */
export type Release = (kind: Kind, id: string) => Promise<void>;

/**
 * The server-wide table of which live sessions hold each session-created VM or workspace.
 * A ref absent from the table was not created by a session and is never released.
 */
export class SessionRegistry {
  private readonly holders = new Map<Ref, Set<SessionScope>>();

  constructor(private readonly release: Release) {}

  /** A scope for a new session. */
  open(): SessionScope {
    return new SessionScope(this);
  }

  /** @internal */ created(ref: Ref, scope: SessionScope): void {
    this.holders.set(ref, new Set([scope]));
  }

  /** @internal */ adopt(ref: Ref, scope: SessionScope): void {
    this.holders.get(ref)?.add(scope);
  }

  /** @internal */ forget(ref: Ref): void {
    this.holders.delete(ref);
  }

  /** @internal Drops `scope` as a holder of `ref`; releases `ref` if nobody holds it now. */
  async drop(ref: Ref, scope: SessionScope): Promise<void> {
    const holders = this.holders.get(ref);
    if (!holders) return;
    holders.delete(scope);
    if (holders.size > 0) return;
    this.holders.delete(ref);
    const [kind, id] = splitRef(ref);
    try {
      await this.release(kind, id);
    } catch (error) {
      // Gone already (deleted by the CLI, reaped): nothing left to release.
      if (!isPyroError(error) || error.code !== "not_found") throw error;
    }
  }
}

/** One session's view: the refs it may see, and the tool-call hook that keeps it. */
export class SessionScope {
  private readonly known = new Set<Ref>();
  private ended = false;
  /** Calls running now, so end() can wait for them (their creations are released then). */
  private readonly running = new Set<Promise<unknown>>();
  private lastCallEnd = 0;

  constructor(private readonly registry: SessionRegistry) {}

  /**
   * Runs one tool call through the session's rules: refs in its arguments become visible
   * (and held, when a session created them), refs it creates become its own, lists show
   * only what it sees. A creation that finishes after the session ended (a slow
   * `workspace_create` whose client went away) is released at once.
   */
  async call(
    tool: string,
    args: Record<string, unknown>,
    run: () => Promise<unknown>,
  ): Promise<unknown> {
    const running = this.runAndRecord(tool, args, run);
    this.running.add(running);
    try {
      return await running;
    } finally {
      this.running.delete(running);
      this.lastCallEnd = Date.now();
    }
  }

  /** The call itself, then what it passed, made or listed is recorded for the session. */
  private async runAndRecord(
    tool: string,
    args: Record<string, unknown>,
    run: () => Promise<unknown>,
  ): Promise<unknown> {
    const result = await run();
    const passed = refsIn(args);
    const deleted = DELETES[tool];
    for (const ref of passed) {
      if (deleted && ref.startsWith(`${deleted}:`)) {
        this.known.delete(ref);
        this.registry.forget(ref);
      } else if (!this.ended) {
        this.known.add(ref);
        this.registry.adopt(ref, this);
      }
    }
    const made = CREATES[tool];
    const madeId = made && idOf(result, made);
    if (made && madeId) {
      const ref: Ref = `${made}:${madeId}`;
      this.registry.created(ref, this);
      if (this.ended) await this.registry.drop(ref, this);
      else this.known.add(ref);
    }
    return this.visible(tool, result);
  }

  /** Tool calls still running: a session with one is not idle, even with no stream open. */
  get callsInFlight(): number {
    return this.running.size;
  }

  /** When the last tool call ended (epoch milliseconds), 0 before any. */
  get lastCallEndMs(): number {
    return this.lastCallEnd;
  }

  /**
   * The session is over: every ref it holds is dropped, and those nobody else holds are
   * released. Errors are collected so one failure does not leave the rest behind.
   * Resolves only once the calls still running have finished (the server has cancelled
   * them; a creation that cannot be cancelled is released as it finishes): the server
   * exits when every session's end has resolved, and must leave nothing booting.
   */
  async end(): Promise<Error[]> {
    this.ended = true;
    await Promise.allSettled([...this.running]);
    const refs = [...this.known];
    this.known.clear();
    const outcomes = await Promise.allSettled(refs.map((ref) => this.registry.drop(ref, this)));
    return outcomes.flatMap((o) =>
      o.status === "rejected"
        ? [o.reason instanceof Error ? o.reason : new Error(String(o.reason))]
        : [],
    );
  }

  /** What the session sees of a listing: its own refs only. */
  private visible(tool: string, result: unknown): unknown {
    if (tool === "workspace_list" && hasArray(result, "workspaces")) {
      const workspaces = result.workspaces.filter((w) => this.sees("workspace", w));
      return { ...result, workspaces };
    }
    if (tool === "vm_reap_expired" && hasArray(result, "removed")) {
      return { ...result, removed: result.removed.filter((vm) => this.sees("vm", vm)) };
    }
    return result;
  }

  private sees(kind: Kind, record: unknown): boolean {
    const id = idOf(record, kind);
    return id !== undefined && this.known.has(`${kind}:${id}`);
  }
}

function refsIn(args: Record<string, unknown>): Ref[] {
  const refs: Ref[] = [];
  if (typeof args.vm_id === "string") refs.push(`vm:${args.vm_id}`);
  if (typeof args.workspace_id === "string") refs.push(`workspace:${args.workspace_id}`);
  return refs;
}

function idOf(record: unknown, kind: Kind): string | undefined {
  if (typeof record !== "object" || record === null) return undefined;
  const id = (record as Record<string, unknown>)[`${kind}_id`];
  return typeof id === "string" ? id : undefined;
}

function hasArray<K extends string>(value: unknown, key: K): value is Record<K, unknown[]> {
  return typeof value === "object" && value !== null && Array.isArray((value as never)[key]);
}

function splitRef(ref: Ref): [Kind, string] {
  const at = ref.indexOf(":");
  return [ref.slice(0, at) as Kind, ref.slice(at + 1)];
}
