import type { OutputHandlers } from "../sdk/pyro.js";

/**
 * Where `pyro run` and `pyro workspace exec` send the guest command's own output: to the
 * host's stdout and stderr as it arrives, unchanged, as ssh and docker exec pass it: it is
 * what the user ran the command for (colours, progress bars, binary data through a pipe).
 * Everything pyro itself prints about it is escaped.
 *
 * When the reader goes away (`pyro run ... | head -1`), a write fails with EPIPE: the
 * command is cancelled (its process group killed, so it stops costing the guest CPU) and
 * the rest of its output dropped, instead of pyro dying of an unhandled error event with
 * a stack trace while the command runs on.
 */
export function passThroughOutput(): Required<OutputHandlers> {
  const reader = new AbortController();
  const to = (stream: NodeJS.WriteStream) => {
    stream.on("error", () => reader.abort());
    return (chunk: Buffer) => {
      if (!reader.signal.aborted) stream.write(chunk);
    };
  };
  return { signal: reader.signal, onStdout: to(process.stdout), onStderr: to(process.stderr) };
}
