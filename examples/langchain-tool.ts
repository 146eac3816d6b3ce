/**
 * pyro's `vm_run` as a LangChain.js tool: a thin wrapper over `Pyro.runInVm`, so any
 * LangChain agent or `model.bindTools([...])` can run commands in fresh microVMs.
 *
 *   import { vmRunTool } from "./langchain-tool.js";
 *   const model = new ChatOpenAI({ model: "gpt-4.1-mini" }).bindTools([vmRunTool()]);
 *
 * Try the tool without a model: npx tsx examples/langchain-tool.ts
 */
import { pathToFileURL } from "node:url";
import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { Pyro } from "pyro-mcp";
import { VM_RUN, runForModel, type VmRunner } from "./vm-run-tool.js";

const { properties } = VM_RUN.parameters;

export function vmRunTool(pyro: VmRunner = new Pyro()) {
  return tool((args) => runForModel(pyro, args), {
    name: VM_RUN.name,
    description: VM_RUN.description,
    schema: z.object({
      environment: z.string().describe(properties.environment.description),
      command: z.array(z.string()).min(1).describe(properties.command.description),
    }),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  console.log(await vmRunTool().invoke({ environment: "debian:12", command: ["uname", "-a"] }));
}
