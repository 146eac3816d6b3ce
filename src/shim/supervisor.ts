import { rm } from "node:fs/promises";
import { type Server, type Socket } from "node:net";
import { PyroError } from "../contract/errors.js";
import type { DeadlinePolicy } from "../guest/bounds.js";
import { ChannelClient, checkRequest } from "../guest/client.js";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
  type Frame,
} from "../guest/frame.js";
import { writeJsonAtomic } from "../util/fs.js";
import { isProcessAlive, lastLines } from "../util/process.js";
import { savedStateInputs, type SavedStateInputs } from "../vmstate/saved-state.js";
import { forkVm, saveable, saveVm, waitUntilIdle, type SaveableVmm } from "./save.js";
import { readFileTail } from "../vmm/console-log.js";
import type { VmmDriver, VmmHandle } from "../vmm/driver.js";
import { ChannelMux } from "../guest/mux.js";
import { AGENT_OPS, SHIM_OPS } from "../guest/ops/index.js";
import { helloEntropy } from "../guest/ops/system.js";
import { ForwardedRequest } from "./forward.js";
import { vmFiles, type ShimLaunchConfig, type ShimStatus } from "./launch.js";
import { ShimNetwork, vmmNetworkSpec } from "./network.js";
import { listenForClients, type ClientListener } from "./client-listener.js";
import { startVmm, type VmmStart } from "./vmm-start.js";

/** What a save is for: `ttl` is the shim's own idle pause. */
type SaveReason = "ttl" | "pause" | "fork";

const SHUTDOWN_TIMEOUT_MS = 5_000;
const VMM_EXIT_GRACE_MS = 2_000;
const CONSOLE_TAIL_LINES = 20;
const CONSOLE_TAIL_BYTES = 16 * 1024;
const OWNER_POLL_MS = 500;

/**
 * Owns one VM: the VMM process, the agent channel, the clients' socket and the TTL.
 * It outlives whoever started it, so a crashed client never leaks a VM.
 */
export class Supervisor {
  private readonly files;
  private status: ShimStatus;
  private vmm: VmmHandle | undefined;
  private agentClient: ChannelClient | undefined;
  /** Present when the VM has a NIC (a network policy other than `off`). */
  readonly network: ShimNetwork | undefined;
  private server: Server | undefined;
  private readonly clients = new Set<ClientConnection>();
  private readyWaiters: (() => void)[] = [];
  private ending: Promise<void> | undefined;
  private ttlTimer: NodeJS.Timeout | undefined;
  /** The VMM launch in progress: an end() during it must still stop what it started. */
  private launching: Promise<VmmHandle> | undefined;
  private markEnded: () => void = () => {};
  /** Settles once the VM is gone and its files are dealt with; then the shim may exit. */
  readonly ended = new Promise<void>((resolve) => (this.markEnded = resolve));
  /** How long a forwarded request may wait for the guest (`guest/bounds.ts`). */
  readonly deadlines: DeadlinePolicy;
  /**
   * A pause or fork is saving the VM: new requests are refused until it is done (after a
   * pause, for good). The refusal says which, so the manager can wait out an idle-TTL
   * pause and resume (`workspace-pause.ts`).
   */
  private saving: SaveReason | undefined;
  /**
   * What the VM runs on, taken when the shim starts (the QEMU binary that runs it, not one
   * installed later): a saved state is only restored under the same (vmstate/saved-state.ts).
   */
  private readonly stateInputs: Promise<SavedStateInputs>;

  constructor(
    private readonly dir: string,
    private readonly config: ShimLaunchConfig,
    private readonly driver: VmmDriver,
    private readonly log: (line: string) => void,
    /**
     * What the shim's entry started before loading this module (`shim/main.ts`): the
     * clients' socket and the VMM.
     */
    private readonly early: { clients?: ClientListener; vmm?: VmmStart } = {},
  ) {
    this.files = vmFiles(dir);
    // Set at once, so an end() before boot() still stops the VMM that is starting.
    this.launching = early.vmm?.handle;
    this.network = config.network
      ? new ShimNetwork(config.network, this.files.networkLog)
      : undefined;
    this.deadlines = {
      ...(config.reply_grace_ms ? { graceMs: config.reply_grace_ms } : {}),
      ...(config.request_deadline_ms ? { defaultDeadlineMs: config.request_deadline_ms } : {}),
    };
    this.status = {
      shim_pid: process.pid,
      vmm_pid: null,
      state: "booting",
      acceleration: config.acceleration,
      agent_version: null,
      timings: {},
      boot_mode: config.restore ? "warm" : "cold",
      error: null,
      stop_reason: null,
      updated_at: new Date().toISOString(),
    };
    this.stateInputs = savedStateInputs(config);
    // A shim that never pauses must not die of an unhandled rejection (a missing binary).
    this.stateInputs.catch(() => {});
  }

  async run(): Promise<void> {
    this.server = await this.serveClients();
    await this.writeStatus();
    // A VM's TTL counts from now, so one that hangs while booting still ends on time; a
    // workspace's idle TTL starts once it can be used.
    if (this.config.ttl_action === "delete") this.touch();
    this.watchOwner();
    try {
      await this.boot();
    } catch (error) {
      await this.fail((error as Error).message);
      return;
    }
    this.touch();
  }

  private watchOwner(): void {
    const owner = this.config.owner_pid;
    if (!owner) return;
    setInterval(() => {
      if (!isProcessAlive(owner))
        void this.end({ remove: true, reason: `owner process ${owner} exited` });
    }, OWNER_POLL_MS).unref();
  }

  /**
   * (Re)arms the TTL. A VM's TTL runs from boot; a workspace's (`ttl_action` `stop` or
   * `pause`) counts idle time, so every client request pushes it back.
   */
  touch(): void {
    if (this.config.ttl_seconds <= 0) return;
    const idle = this.config.ttl_action !== "delete";
    if (this.ttlTimer && !idle) return;
    if (this.ttlTimer) clearTimeout(this.ttlTimer);
    this.ttlTimer = setTimeout(() => {
      if (idle && this.busyRequests > 0) return this.touch();
      this.log(`ttl of ${this.config.ttl_seconds}s reached`);
      if (this.config.ttl_action === "pause") return void this.pauseAtTtl();
      void this.end({ remove: this.config.ttl_action === "delete", reason: "ttl" });
    }, this.config.ttl_seconds * 1000);
  }

  /** An idle workspace is paused; one whose driver cannot save (or whose save fails) stops. */
  private async pauseAtTtl(): Promise<void> {
    try {
      await this.pause("ttl");
    } catch (error) {
      if (error instanceof PyroError && error.code === "conflict" && !this.ending) {
        this.touch(); // a request came in meanwhile: not idle after all
        return;
      }
      this.log(`could not pause at the ttl (${(error as Error).message}); stopping instead`);
      await this.end({ remove: false, reason: "ttl" });
    }
  }

  /**
   * Requests in flight through the agent; an idle TTL never fires while one runs. Each
   * has a deadline (`forward.ts`), so a guest that never answers cannot hold it off.
   */
  private busyRequests = 0;

  requestStarted(): void {
    this.busyRequests += 1;
    this.touch();
  }

  requestSettled(): void {
    this.busyRequests -= 1;
    this.touch();
  }

  private async boot(): Promise<void> {
    const network = this.network;
    const start =
      this.early.vmm ??
      startVmm(
        this.driver,
        this.dir,
        this.config,
        network && { prepare: () => network.prepare(), spec: vmmNetworkSpec() },
      );
    const started = start.startedAt;
    const restore = this.config.restore ?? undefined;
    this.launching = start.handle;
    this.vmm = await this.launching;
    this.status.boot_mode = restore ? "warm" : "cold";
    if (restore) this.status.timings.restore_ms = Math.round(start.readyAt! - start.launchedAt!);
    // A saved state was consumed before its restore (`consumeSavedState`, vmm-start.ts).
    if (this.network) {
      if (!this.vmm.network) throw new Error(`the ${this.driver.name} driver has no network`);
      this.network.attach(this.vmm.network);
    }
    const vmmReady = start.readyAt ?? performance.now();
    this.status.vmm_pid = this.vmm.pid;
    this.status.timings.vmm_start_ms = Math.round(vmmReady - started);
    void this.vmm.exited.then((exit) => this.onVmmExit(exit.code, exit.signal));
    const agentSocket = await withTimeout(
      this.vmm.agentChannel,
      // Under Firecracker the channel opens only once the guest's agent listens.
      this.config.boot_timeout_ms,
      "the VMM never opened the agent channel",
    );
    // A template's clone was told to go on by startVmm (`vmm-start.ts`).
    const mux = new ChannelMux(agentSocket, {
      onBroken: (error) => void this.fail(`lost the guest agent: ${error.message}`),
    });
    // Every request the shim makes itself passes its own deadline.
    this.agentClient = new ChannelClient(mux);
    const hello = await this.agentClient.request(
      AGENT_OPS.hello,
      {
        time_ms: Date.now(),
        hostname: this.config.hostname,
        ...(this.config.workspace_root ? { workspace_root: this.config.workspace_root } : {}),
        // A restored guest has its template's (or its saved self's) RNG state: without
        // fresh input, clones would draw the same numbers.
        entropy: helloEntropy(),
      },
      { deadlineMs: this.config.boot_timeout_ms },
    );
    await this.network?.configureGuest(this.agentClient, this.config.boot_timeout_ms);
    this.status.timings.boot_ms = Math.round(performance.now() - vmmReady);
    this.status.agent_version = hello.agent_version;
    this.status.state = "ready";
    await this.writeStatus();
    for (const wake of this.readyWaiters.splice(0)) wake();
    this.log(`ready in ${Math.round(performance.now() - started)} ms`);
  }

  /**
   * Stops the VM (agent shutdown, then VMM stop, then kill) and exits the shim. With
   * `paused` the VM was saved by {@link pause}: its guest is stopped, so the VMM just quits.
   */
  end(options: { remove: boolean; reason: string; paused?: boolean }): Promise<void> {
    this.ending ??= this.doEnd(options);
    return this.ending;
  }

  private async doEnd({
    remove,
    reason,
    paused = false,
  }: {
    remove: boolean;
    reason: string;
    paused?: boolean;
  }) {
    this.log(`ending: ${reason}`);
    const wasReady = this.status.state === "ready";
    if (this.ttlTimer) clearTimeout(this.ttlTimer);
    this.status.stop_reason ??= reason;
    if (this.status.state === "ready" || this.status.state === "booting")
      this.status.state = "stopping";
    await this.writeStatus().catch(() => {});
    this.vmm ??= await this.launching?.catch(() => undefined);
    if (this.vmm && this.vmm.status() === "running") {
      if (this.agentClient && this.status.state === "stopping" && !paused) {
        await this.agentClient
          .request(AGENT_OPS.shutdown, { power_off: true }, { deadlineMs: SHUTDOWN_TIMEOUT_MS })
          .catch(() => {});
      }
      const exitedInTime =
        !paused &&
        (await Promise.race([
          this.vmm.exited.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), VMM_EXIT_GRACE_MS)),
        ]));
      if (!exitedInTime) await this.vmm.stop().catch(() => this.vmm?.kill());
    }
    if (this.status.state !== "failed") this.status.state = paused ? "paused" : "exited";
    // A VM that ran and ended unpaused has no use for its RAM file (the next boot starts
    // afresh); a failed restore keeps it for the manager to decide about.
    if (wasReady && !paused && this.config.memory_path)
      await rm(this.config.memory_path, { force: true });
    await this.network?.close();
    if (remove || this.config.delete_on_exit) {
      await rm(this.dir, { recursive: true, force: true });
    } else {
      await this.writeStatus().catch(() => {});
      await rm(this.files.socket, { force: true });
    }
    for (const client of this.clients) client.finishEnding();
    this.server?.close();
    this.markEnded();
  }

  private async fail(message: string) {
    // Once ending, a closing channel or exiting VMM is the expected outcome, not a failure.
    if (this.ending || this.status.state === "failed") return;
    // Only the end of the log is read: it may be huge (a guest can print forever, and
    // not every VMM's console goes through a capped log).
    const consoleTail = lastLines(
      await readFileTail(this.files.console, CONSOLE_TAIL_BYTES),
      CONSOLE_TAIL_LINES,
    );
    this.status.state = "failed";
    this.status.error = consoleTail ? `${message}\nlast console lines:\n${consoleTail}` : message;
    this.log(`failed: ${this.status.error}`);
    for (const wake of this.readyWaiters.splice(0)) wake();
    await this.end({ remove: this.config.delete_on_exit, reason: message });
  }

  private onVmmExit(code: number | null, signal: string | null) {
    if (this.ending) return;
    void this.fail(`the VMM exited unexpectedly (${code ?? signal})`);
  }

  private async writeStatus() {
    this.status.updated_at = new Date().toISOString();
    await writeJsonAtomic(this.files.status, this.status, 0o600);
  }

  private async serveClients(): Promise<Server> {
    const listener = this.early.clients ?? (await listenForClients(this.files.socket));
    listener.accept((socket) => {
      const client = new ClientConnection(socket, this);
      this.clients.add(client);
      socket.on("close", () => {
        this.clients.delete(client);
        client.onClose();
      });
    });
    return listener.server;
  }

  // ---- used by ClientConnection ----

  statusSnapshot(): ShimStatus {
    return { ...this.status, timings: { ...this.status.timings } };
  }

  whenSettled(): Promise<void> {
    if (this.status.state !== "booting") return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  networkInfo() {
    return (
      this.network?.info() ?? {
        policy: "off" as const,
        guest_address: null,
        prefix_len: null,
        gateway: null,
        dns: [],
        allowed_domains: [],
        proxy_port: null,
        published_ports: [],
        refusals: { refused_total: 0, refused_by_reason: {} },
      }
    );
  }

  requireNetwork(): ShimNetwork {
    if (!this.network)
      throw new PyroError(
        "invalid_argument",
        'this VM has no network (policy "off"); publishing ports needs network_policy "egress+published-ports"',
      );
    return this.network;
  }

  /**
   * Adds the network's variables (the allowlist proxy) to a process's environment; the
   * caller's own values win, so a command can still unset or override them.
   */
  withGuestEnvironment(message: Record<string, unknown>): Record<string, unknown> {
    const extra = this.network?.guestEnvironment() ?? {};
    if (Object.keys(extra).length === 0) return message;
    const own = message.env && typeof message.env === "object" ? message.env : {};
    return { ...message, env: { ...extra, ...own } };
  }

  agent(): ChannelClient {
    if (this.saving) {
      throw new PyroError(
        "conflict",
        "the VM is being saved (a pause or fork); try again once that call has returned",
        { details: { saving: this.saving } },
      );
    }
    if (!this.agentClient || this.status.state !== "ready") {
      throw new PyroError("conflict", `the VM is ${this.status.state}, not ready`);
    }
    return this.agentClient;
  }

  // ---- pause and fork (src/shim/save.ts) ----

  /**
   * Saves the VM into its directory (`vmstate` beside the RAM file it already lives in)
   * and ends the shim with state `paused`. Refused with `conflict` when requests stay in
   * flight, `unavailable` when the driver cannot save; the VM then runs on untouched.
   */
  async pause(reason: string): Promise<void> {
    await this.whileSaving(reason === "ttl" ? "ttl" : "pause", async (vmm) => {
      const started = performance.now();
      await saveVm(vmm, this.dir, this.saveSpec(), { resumeOnFailure: true });
      this.status.timings.pause_ms = Math.round(performance.now() - started);
      // Still refusing requests: the guest is stopped for good now.
      await this.end({ remove: false, reason, paused: true });
    });
  }

  /**
   * Copies the VM into `targetDir` (a fresh sandbox directory) while its guest is stopped,
   * so the copy boots like a paused VM; then this VM runs on. Returns how long it stopped.
   */
  async fork(targetDir: string): Promise<number> {
    return this.whileSaving("fork", (vmm) =>
      forkVm(
        vmm,
        targetDir,
        {
          ...this.saveSpec(),
          memoryPath: this.config.memory_path ?? this.files.memory,
          stateDiskPath: this.config.state_disk_path,
        },
        (error) => void this.fail(`the VM could not continue after a fork: ${error.message}`),
      ),
    );
  }

  /**
   * Runs `save` once no request is in flight, refusing new ones meanwhile; after a save
   * that ended the VM (a pause) they stay refused as being saved, until the shim exits.
   */
  private async whileSaving<T>(
    reason: SaveReason,
    save: (vmm: SaveableVmm) => Promise<T>,
  ): Promise<T> {
    if (this.saving) {
      throw new PyroError("conflict", "the VM is already being saved", {
        details: { saving: this.saving },
      });
    }
    if (this.status.state !== "ready" || this.ending || !this.vmm) {
      throw new PyroError("conflict", `the VM is ${this.status.state}, not ready`);
    }
    const vmm = saveable(this.vmm, this.driver.name, this.config.memory_path);
    this.saving = reason;
    try {
      await waitUntilIdle(() => this.busyRequests);
      return await save(vmm);
    } finally {
      if (!this.ending) this.saving = undefined;
    }
  }

  private saveSpec() {
    return { inputs: this.stateInputs, memMib: this.config.mem_mib };
  }
}

/** One client of the shim: its requests are either shim ops or forwarded to the agent. */
class ClientConnection {
  private readonly reader = new FrameReader();
  /** Requests in flight to the agent, by client channel. */
  private readonly forwarded = new Map<number, ForwardedRequest>();
  private owner = false;
  private pendingStop: number | undefined;
  /** This client's socket is full: the agent is not read until it drains. */
  private holdingAgent: ChannelMux | undefined;
  /** The agent's socket is full: this client is not read until it drains. */
  private waitingForAgent = false;

  constructor(
    private readonly socket: Socket,
    private readonly shim: Supervisor,
  ) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("drain", () => this.releaseAgent());
    socket.on("error", () => socket.destroy());
  }

  onClose(): void {
    this.releaseAgent();
    for (const request of this.forwarded.values()) {
      try {
        request.kill();
      } catch {
        // The VM is already going away.
      }
    }
    if (this.owner) void this.shim.end({ remove: true, reason: "owning client disconnected" });
  }

  /** Answers a pending `shim.stop` once the VM is really gone. */
  finishEnding(): void {
    if (this.pendingStop !== undefined)
      this.reply(this.pendingStop, { type: "result", ...this.shim.statusSnapshot() });
    this.pendingStop = undefined;
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch {
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      // A client's frame must never take the shim (and with it the VM) down.
      try {
        this.onFrame(frame);
      } catch (error) {
        if (frame.type === FrameType.control) {
          this.reply(frame.channel, {
            type: "error",
            code: "unavailable",
            message: (error as Error).message,
          });
        }
      }
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.type !== FrameType.control) {
      const request = this.forwarded.get(frame.channel);
      if (request) this.sendToAgent(request.agentChannel, frame);
      return;
    }
    let message: Record<string, unknown>;
    try {
      message = decodeControl(frame.payload);
    } catch (error) {
      this.reply(frame.channel, {
        type: "error",
        code: "invalid_argument",
        message: (error as Error).message,
      });
      return;
    }
    void this.handle(frame.channel, message).catch((error: Error) => {
      const code = error instanceof PyroError ? error.code : "internal";
      const saving = error instanceof PyroError ? error.details.saving : undefined;
      this.reply(frame.channel, {
        type: "error",
        code,
        message: error.message,
        ...(saving === undefined ? {} : { saving }),
      });
    });
  }

  private async handle(channel: number, message: Record<string, unknown>): Promise<void> {
    switch (message.op) {
      case SHIM_OPS.status.name:
        return this.reply(channel, { type: "result", ...this.shim.statusSnapshot() });
      case SHIM_OPS.wait_ready.name:
        await this.shim.whenSettled();
        return this.reply(channel, { type: "result", ...this.shim.statusSnapshot() });
      case SHIM_OPS.claim.name:
        this.owner = true;
        return this.reply(channel, { type: "result" });
      case SHIM_OPS.stop.name: {
        const { remove } = checkRequest(SHIM_OPS.stop, { remove: message.remove });
        this.pendingStop = channel;
        void this.shim.end({ remove, reason: "stop requested" });
        return;
      }
      case SHIM_OPS.pause.name: {
        checkRequest(SHIM_OPS.pause, fieldsOf(message));
        // Answered like a stop, with the final status once the shim has ended.
        this.pendingStop = channel;
        return this.shim.pause("pause requested").catch((error: unknown) => {
          this.pendingStop = undefined;
          throw error;
        });
      }
      case SHIM_OPS.fork.name: {
        const { target_dir } = checkRequest(SHIM_OPS.fork, fieldsOf(message));
        const stoppedMs = await this.shim.fork(target_dir);
        return this.reply(channel, { type: "result", stopped_ms: stoppedMs });
      }
      case SHIM_OPS.network_info.name:
        return this.reply(channel, { type: "result", ...this.shim.networkInfo() });
      case SHIM_OPS.publish_port.name: {
        const request = checkRequest(SHIM_OPS.publish_port, fieldsOf(message));
        const network = this.shim.requireNetwork();
        this.shim.touch();
        const port = await network.publish(request.guest_port, request.host_port);
        return this.reply(channel, { type: "result", ...port });
      }
      case SHIM_OPS.unpublish_port.name: {
        const request = checkRequest(SHIM_OPS.unpublish_port, fieldsOf(message));
        await this.shim.network?.unpublish(request.host_port);
        return this.reply(channel, { type: "result" });
      }
      case AGENT_OPS.exec.name:
      case AGENT_OPS.service_start.name:
      case AGENT_OPS.shell_open.name:
        return this.forward(channel, this.shim.withGuestEnvironment(message));
      case AGENT_OPS.signal.name:
        return this.forward(channel, {
          ...message,
          target_channel: this.forwarded.get(Number(message.target_channel))?.agentChannel ?? 0,
        });
      default:
        return this.forward(channel, message);
    }
  }

  private forward(channel: number, message: Record<string, unknown>): void {
    const agent = this.shim.agent();
    this.shim.requestStarted();
    const sink = {
      output: (type: number, payload: Buffer) => this.output(agent.mux, channel, type, payload),
      end: (reply: Record<string, unknown>) => {
        // A client may have reused the channel id meanwhile; that request is not this one.
        if (this.forwarded.get(channel) === request) this.forwarded.delete(channel);
        this.reply(channel, reply);
        // Nothing more will be written to this client but replies: a client that stopped
        // reading no longer holds up the agent (and every other client) once its requests end.
        if (this.forwarded.size === 0) this.releaseAgent();
      },
    };
    const onSettled = () => this.shim.requestSettled();
    const request = new ForwardedRequest(agent, message, sink, this.shim.deadlines, onSettled);
    this.forwarded.set(channel, request);
  }

  /**
   * Guest output to this client, with backpressure: while the client's socket is full
   * the agent is not read, so a client that does not read cannot make the shim buffer
   * what a flooding guest writes (issue 7, defect 6).
   */
  private output(mux: ChannelMux, channel: number, type: number, payload: Buffer): void {
    if (this.socket.destroyed) return;
    if (this.socket.write(encodeFrame(channel, type, payload)) || this.holdingAgent) return;
    this.holdingAgent = mux;
    mux.hold(this);
  }

  private releaseAgent(): void {
    this.holdingAgent?.release(this);
    this.holdingAgent = undefined;
  }

  /** Client input (stdin) to the agent; a guest that does not read it pauses this client. */
  private sendToAgent(agentChannel: number, frame: Frame): void {
    const mux = this.shim.agent().mux;
    if (mux.send(agentChannel, frame.type, frame.payload) || this.waitingForAgent) return;
    this.waitingForAgent = true;
    this.socket.pause();
    mux.onceWritable(() => {
      this.waitingForAgent = false;
      this.socket.resume();
    });
  }

  private reply(channel: number, message: Record<string, unknown>): void {
    if (this.socket.destroyed) return;
    try {
      this.socket.write(encodeControl(channel, message));
    } catch {
      // Re-encoding a guest message can outgrow the control limit (invalid UTF-8 expands).
      const error = {
        type: "error",
        code: "guest_error",
        message: "the guest sent an oversized reply",
      };
      this.socket.write(encodeControl(channel, error));
    }
  }
}

/** A request's fields without its `op` (shim op schemas are strict). */
function fieldsOf({ op: _op, ...fields }: Record<string, unknown>): Record<string, unknown> {
  return fields;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
