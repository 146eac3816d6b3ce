import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { errorResult, successResult } from "../../src/mcp/results.js";

describe("MCP tool results", () => {
  it("renders a command result like a terminal, keeping the payload as structured content", () => {
    const payload = {
      vm_id: "vm_0123456789ab",
      exit_code: 1,
      stdout: "hello\n",
      stderr: "",
      duration_ms: 12,
      timed_out: false,
      stdout_truncated: true,
      stderr_truncated: false,
    };
    const result = successResult(payload);
    expect(result.structuredContent).toBe(payload);
    expect(result.content).toEqual([
      { type: "text", text: "exit_code: 1, 12 ms\nstdout: (truncated)\nhello\nstderr: (empty)" },
    ]);
  });

  it("says when a command timed out", () => {
    const result = successResult({ exit_code: 124, stdout: "", stderr: "", timed_out: true });
    expect(result.content[0]).toMatchObject({
      text: expect.stringMatching(/^exit_code: 124, timed out/),
    });
  });

  it("renders other results as sorted JSON", () => {
    const result = successResult({ vm_id: "vm_1", deleted: true });
    expect(result.content[0]).toEqual({
      type: "text",
      text: '{\n  "deleted": true,\n  "vm_id": "vm_1"\n}',
    });
  });

  it("reads [code] message for a PyroError and [internal] for anything else", () => {
    const conflict = new PyroError("conflict", "VM vm_1 is stopped; start it with vm_start");
    expect(errorResult(conflict, "vm_exec")).toEqual({
      isError: true,
      content: [{ type: "text", text: "[conflict] VM vm_1 is stopped; start it with vm_start" }],
    });
    expect(errorResult(new Error("boom"), "vm_run").content[0]).toMatchObject({
      text: "[internal] vm_run failed: boom",
    });
  });
});
