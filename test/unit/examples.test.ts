import type { ResponseFunctionToolCall } from "openai/resources/responses/responses";
import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { RunParams, type RunParamsInput, type RunResultValue } from "../../src/contract/vm.js";
import { vmRunTool } from "../../examples/langchain-tool.js";
import { dispatchFunctionCall, VM_RUN_FUNCTION } from "../../examples/openai-responses.js";
import { VM_RUN, type VmRunner } from "../../examples/vm-run-tool.js";

/** Stands in for Pyro in these tests only: records the calls, answers like runInVm. */
function fakePyro(answer: (args: RunParamsInput) => RunResultValue | Error) {
  const calls: RunParamsInput[] = [];
  const pyro: VmRunner = {
    runInVm: async (args) => {
      calls.push(args);
      const result = answer(args);
      if (result instanceof Error) throw result;
      return result;
    },
  };
  return { pyro, calls };
}

const outcome = (stdout: string): RunResultValue => ({
  vm_id: "vm_0123456789ab",
  environment: "debian:12",
  command: ["uname", "-r"],
  exit_code: 0,
  stdout,
  stderr: "",
  duration_ms: 5,
  timed_out: false,
  stdout_truncated: false,
  stderr_truncated: false,
  execution_mode: "guest",
  acceleration: "tcg",
  boot_mode: "warm",
  cold_reason: null,
  timings: {
    template_ms: 1,
    vmm_start_ms: 1,
    restore_ms: 1,
    boot_ms: 1,
    agent_ready_ms: 1,
    exec_ms: 1,
    teardown_ms: 1,
  },
});

const functionCall = (args: string, name = "vm_run"): ResponseFunctionToolCall => ({
  type: "function_call",
  call_id: "call_1",
  name,
  arguments: args,
});

describe("the vm_run tool the framework examples share", () => {
  it("uses the contract's tool name and field names, leaving defaults to the contract", () => {
    expect(VM_RUN.name).toBe("vm_run");
    const fields = Object.keys(VM_RUN.parameters.properties);
    expect(fields.filter((f) => !(f in RunParams.shape))).toEqual([]);
    expect(VM_RUN.parameters.required).toEqual(["environment", "command"]);
  });
});

describe("OpenAI Responses example: dispatchFunctionCall", () => {
  it("runs a vm_run call and answers with a function_call_output for the same call_id", async () => {
    const { pyro, calls } = fakePyro(() => outcome("6.1.0-pyro\n"));
    const item = await dispatchFunctionCall(
      pyro,
      functionCall('{"environment":"debian:12","command":["uname","-r"]}'),
    );
    expect(calls).toEqual([{ environment: "debian:12", command: ["uname", "-r"] }]);
    expect(item.type).toBe("function_call_output");
    expect(item.call_id).toBe("call_1");
    expect(JSON.parse(item.output as string)).toEqual({
      exit_code: 0,
      stdout: "6.1.0-pyro\n",
      stderr: "",
      timed_out: false,
      stdout_truncated: false,
      stderr_truncated: false,
    });
    expect(VM_RUN_FUNCTION).toMatchObject({ type: "function", name: "vm_run", strict: true });
  });

  it("hands pyro's error back to the model as [code] message", async () => {
    const { pyro } = fakePyro(
      () => new PyroError("not_found", 'unknown environment "debian:13"; use debian:12'),
    );
    const item = await dispatchFunctionCall(
      pyro,
      functionCall('{"environment":"debian:13","command":["true"]}'),
    );
    expect(item.output).toBe('[not_found] unknown environment "debian:13"; use debian:12');
  });

  it("answers malformed arguments and unknown tools without running anything", async () => {
    const { pyro, calls } = fakePyro(() => outcome(""));
    const bad = await dispatchFunctionCall(pyro, functionCall("{not json"));
    expect(bad.output).toMatch(/not valid JSON/);
    const unknown = await dispatchFunctionCall(pyro, functionCall("{}", "rm_rf"));
    expect(unknown.output).toMatch(/unknown tool "rm_rf"; the only tool is vm_run/);
    expect(calls).toEqual([]);
  });
});

describe("LangChain example: vmRunTool", () => {
  it("validates its input and returns the command's outcome", async () => {
    const { pyro, calls } = fakePyro(() => outcome("hi\n"));
    const tool = vmRunTool(pyro);
    expect(tool.name).toBe("vm_run");
    const text = await tool.invoke({ environment: "debian:12", command: ["echo", "hi"] });
    expect(JSON.parse(text)).toMatchObject({ exit_code: 0, stdout: "hi\n" });
    expect(calls).toEqual([{ environment: "debian:12", command: ["echo", "hi"] }]);
    await expect(tool.invoke({ environment: "debian:12", command: [] })).rejects.toThrow();
  });
});
