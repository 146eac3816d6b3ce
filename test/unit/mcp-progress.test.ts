import type { ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  MAX_PROGRESS_LINE_CHARS,
  MAX_PROGRESS_LINES,
  OutputLines,
} from "../../src/mcp/output-lines.js";
import { progressForRequest } from "../../src/mcp/progress.js";

const recorder = (progressToken?: string | number) => {
  const sent: ServerNotification[] = [];
  const request = {
    ...(progressToken === undefined ? {} : { _meta: { progressToken } }),
    sendNotification: async (n: ServerNotification) => void sent.push(n),
  };
  const messages = () => sent.map((n) => (n.params as { message: string }).message);
  return { sent, request, messages };
};

describe("MCP progress: phases", () => {
  it("sends nothing when the client did not ask for progress", () => {
    const { sent, request } = recorder();
    const progress = progressForRequest(request);
    progress.phases({ scope: "run", phase: "boot" });
    progress.output.onStdout(Buffer.from("hello\n"));
    expect(sent).toEqual([]);
  });

  it("forwards phase lines with a progress count that only increases", () => {
    const { sent, request } = recorder("tok-1");
    const sink = progressForRequest(request, 60_000).phases;
    sink({ scope: "run", phase: "boot", fields: { vm_id: "vm_1", environment: "debian:12" } });
    sink({ scope: "run", phase: "boot", fields: { vm_id: "vm_1", environment: "debian:12" } });
    sink({ scope: "kernel", phase: "build", fraction: 0.5 });
    sink({ scope: "run", phase: "exec" });
    expect(sent.map((n) => n.params)).toEqual([
      {
        progressToken: "tok-1",
        progress: 1,
        message: "[run] phase=boot vm_id=vm_1 environment=debian:12",
      },
      { progressToken: "tok-1", progress: 2, message: "[kernel] phase=build 50%" },
      { progressToken: "tok-1", progress: 3, message: "[run] phase=exec" },
    ]);
    expect(sent.every((n) => n.method === "notifications/progress")).toBe(true);
  });

  it("never lets a failed notification fail the work", async () => {
    const progress = progressForRequest({
      _meta: { progressToken: 7 },
      sendNotification: () => Promise.reject(new Error("client gone")),
    });
    expect(() => progress.phases({ scope: "run", phase: "boot" })).not.toThrow();
    progress.output.onStdout(Buffer.from("line\n"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    progress.close();
  });
});

describe("MCP progress: command output", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("sends the first output at once, then what collects at most once per interval", () => {
    const { sent, request, messages } = recorder("tok-2");
    const progress = progressForRequest(request, 1000);
    progress.phases({ scope: "run", phase: "exec" });
    progress.output.onStdout(Buffer.from("one\n"));
    vi.advanceTimersByTime(0);
    expect(messages()).toEqual(["[run] phase=exec", "one"]);
    progress.output.onStdout(Buffer.from("two\n"));
    progress.output.onStderr(Buffer.from("warning\n"));
    vi.advanceTimersByTime(999);
    expect(messages()).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(messages()).toEqual(["[run] phase=exec", "one", "two\n[stderr] warning"]);
    // Phases and output share one count, which only increases.
    expect(sent.map((n) => (n.params as { progress: number }).progress)).toEqual([1, 2, 3]);
    progress.close();
  });

  it("sends a quiet command's last lines within the interval, and nothing after close", () => {
    const { request, messages } = recorder(1);
    const progress = progressForRequest(request, 1000);
    progress.output.onStdout(Buffer.from("first\n"));
    vi.advanceTimersByTime(0);
    progress.output.onStdout(Buffer.from("last\n"));
    vi.advanceTimersByTime(5000);
    expect(messages()).toEqual(["first", "last"]);
    progress.output.onStdout(Buffer.from("after the answer\n"));
    progress.close();
    progress.phases({ scope: "run", phase: "teardown" });
    vi.advanceTimersByTime(5000);
    expect(messages()).toEqual(["first", "last"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps one notification a second however much the command prints", () => {
    const { request, messages } = recorder("flood");
    const progress = progressForRequest(request, 1000);
    for (let second = 0; second < 5; second++) {
      for (let i = 0; i < 1000; i++) progress.output.onStdout(Buffer.from(`${second}:${i}\n`));
      vi.advanceTimersByTime(1000);
    }
    progress.close();
    expect(messages().length).toBeLessThanOrEqual(6);
    for (const message of messages()) {
      expect(message.split("\n").length).toBeLessThanOrEqual(MAX_PROGRESS_LINES + 1);
    }
    expect(messages().at(-1)).toMatch(/\n4:999$/);
  });
});

describe("OutputLines", () => {
  const take = (lines: OutputLines) => lines.take()?.split("\n");

  it("keeps the newest lines and counts the ones it leaves out", () => {
    const lines = new OutputLines();
    const text = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join("");
    lines.push("stdout", Buffer.from(text));
    const shown = take(lines)!;
    expect(shown[0]).toBe(`[${100 - MAX_PROGRESS_LINES} earlier lines not shown]`);
    expect(shown.slice(1)).toEqual(
      Array.from({ length: MAX_PROGRESS_LINES }, (_, i) => `line ${100 - MAX_PROGRESS_LINES + i}`),
    );
    expect(lines.take()).toBeUndefined();
  });

  it("keeps a character split across chunks whole, at every split point", () => {
    const bytes = Buffer.from("naïve 🙂 ünïcödé\n");
    for (let cut = 0; cut <= bytes.length; cut++) {
      const lines = new OutputLines();
      lines.push("stdout", bytes.subarray(0, cut));
      lines.push("stdout", bytes.subarray(cut));
      expect(take(lines), `cut at ${cut}`).toEqual(["naïve 🙂 ünïcödé"]);
    }
  });

  it("sends a line still being written once, and again when it changes or ends", () => {
    const lines = new OutputLines();
    lines.push("stdout", Buffer.from("Downloading... 10%"));
    expect(take(lines)).toEqual(["Downloading... 10%"]);
    expect(lines.take()).toBeUndefined();
    lines.push("stdout", Buffer.from("\rDownloading... 60%"));
    expect(take(lines)).toEqual(["Downloading... 60%"]);
    lines.push("stdout", Buffer.from("\rDownloading... done\n"));
    expect(take(lines)).toEqual(["Downloading... done"]);
    expect(lines.take()).toBeUndefined();
  });

  it("keeps the streams' lines apart and in arrival order", () => {
    const lines = new OutputLines();
    lines.push("stdout", Buffer.from("out 1\nout "));
    lines.push("stderr", Buffer.from("err 1\n"));
    lines.push("stdout", Buffer.from("2\n"));
    expect(take(lines)).toEqual(["out 1", "[stderr] err 1", "out 2"]);
  });

  it("removes colours, titles and control characters, and cuts long lines", () => {
    const lines = new OutputLines();
    lines.push("stdout", Buffer.from("\x1b[1;31mred\x1b[0m \x1b]0;title\x07plain\x07\x00\ttab\n"));
    lines.push("stdout", Buffer.from(`${"x".repeat(MAX_PROGRESS_LINE_CHARS + 50)}\n`));
    expect(take(lines)).toEqual(["red plain\ttab", `${"x".repeat(MAX_PROGRESS_LINE_CHARS)}…`]);
  });

  it("holds a bounded amount of a stream that never prints a newline", () => {
    const lines = new OutputLines();
    for (let i = 0; i < 1000; i++) lines.push("stdout", Buffer.alloc(10_000, "y"));
    const message = lines.take()!;
    expect(message.length).toBeLessThan((MAX_PROGRESS_LINES + 1) * (MAX_PROGRESS_LINE_CHARS + 50));
  });
});
