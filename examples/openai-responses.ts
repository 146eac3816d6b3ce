/**
 * A tool-calling loop with the OpenAI Responses API: the model gets pyro's `vm_run` as a
 * function tool, and every command it asks for runs in a fresh microVM.
 *
 *   OPENAI_API_KEY=sk-... npx tsx examples/openai-responses.ts "Which kernel does the VM run?"
 *
 * OPENAI_MODEL picks the model (default gpt-4.1-mini). Calls run one after another, so a
 * model that asks for many commands at once never boots many VMs at once.
 */
import { pathToFileURL } from "node:url";
import OpenAI from "openai";
import type {
  FunctionTool,
  ResponseFunctionToolCall,
  ResponseInputItem,
} from "openai/resources/responses/responses";
import { Pyro } from "pyro-mcp";
import { VM_RUN, runForModel, type VmRunner } from "./vm-run-tool.js";

export const VM_RUN_FUNCTION: FunctionTool = {
  type: "function",
  name: VM_RUN.name,
  description: VM_RUN.description,
  parameters: VM_RUN.parameters,
  strict: true,
};

/**
 * Answers one `function_call` item of a response: runs it with pyro and returns the
 * `function_call_output` item for the next request. Anything the model got wrong (an
 * unknown tool, arguments that are not JSON, a bad environment) goes back as text it
 * can correct, instead of ending the loop.
 */
export async function dispatchFunctionCall(
  pyro: VmRunner,
  call: ResponseFunctionToolCall,
): Promise<ResponseInputItem.FunctionCallOutput> {
  const answer = (output: string) =>
    ({ type: "function_call_output", call_id: call.call_id, output }) as const;
  if (call.name !== VM_RUN.name) {
    return answer(`unknown tool "${call.name}"; the only tool is ${VM_RUN.name}`);
  }
  let args: unknown;
  try {
    args = JSON.parse(call.arguments);
  } catch {
    return answer(`the arguments are not valid JSON: ${call.arguments}`);
  }
  return answer(await runForModel(pyro, args as Parameters<VmRunner["runInVm"]>[0]));
}

/** Asks the model until it answers without calling a tool (at most `maxTurns` rounds). */
export async function ask(question: string, maxTurns = 8): Promise<string> {
  const openai = new OpenAI();
  const pyro = new Pyro();
  const model = process.env.OPENAI_MODEL ?? "gpt-4.1-mini";
  let response = await openai.responses.create({
    model,
    input: question,
    tools: [VM_RUN_FUNCTION],
  });
  for (let turn = 0; turn < maxTurns; turn++) {
    const calls = response.output.filter(
      (item): item is ResponseFunctionToolCall => item.type === "function_call",
    );
    if (calls.length === 0) return response.output_text;
    const outputs: ResponseInputItem[] = [];
    for (const call of calls) outputs.push(await dispatchFunctionCall(pyro, call));
    response = await openai.responses.create({
      model,
      previous_response_id: response.id,
      input: outputs,
      tools: [VM_RUN_FUNCTION],
    });
  }
  throw new Error(`no answer after ${maxTurns} rounds of tool calls`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (!process.env.OPENAI_API_KEY) {
    console.error("set OPENAI_API_KEY to run this example");
    process.exit(2);
  }
  console.log(await ask(process.argv[2] ?? "Which Linux kernel version does the VM run?"));
}
