import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../util/paths.js";

/** Cache layout: every built artifact lives in a directory named by what it was built from. */
export const cachePaths = {
  root: () => cacheDir(),
  kernels: () => join(cacheDir(), "kernels"),
  agents: () => join(cacheDir(), "agents"),
  environments: () => join(cacheDir(), "environments"),
  builds: () => join(cacheDir(), "build"),
  locks: () => join(cacheDir(), "locks"),
  accel: () => join(cacheDir(), "acceleration.json"),
};

export function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9.-]/g, "_");
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export function sha256Text(...parts: string[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part).update("\0");
  return hash.digest("hex");
}
