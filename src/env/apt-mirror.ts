import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";

/** Where apt keeps its sources: one-line `sources.list` and deb822 `*.sources` files. */
export const APT_SOURCES = { list: "/etc/apt/sources.list", dir: "/etc/apt/sources.list.d" };

interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
}

/**
 * The Debian archive environments are built from: `PYRO_DEBIAN_MIRROR`, else the host's
 * own apt configuration (the first `deb` source for `suite` that is not the security
 * archive). pyro names no mirror of its own: the host already knows which one it may reach.
 */
export async function debianMirror(
  suite: string,
  env: NodeJS.ProcessEnv = process.env,
  sources = APT_SOURCES,
): Promise<string> {
  const configured = env.PYRO_DEBIAN_MIRROR?.trim();
  if (configured) return configured;
  const found = pickMirror(await readAptSources(sources), suite);
  if (found) return found;
  throw new PyroError(
    "unavailable",
    `no Debian archive for ${suite} in the host's apt sources (${sources.list}, ${sources.dir}/*.sources); ` +
      "set PYRO_DEBIAN_MIRROR to the archive's URL (the one apt uses), e.g. http://<mirror>/debian",
  );
}

export function pickMirror(sources: AptSource[], suite: string): string | undefined {
  for (const source of sources) {
    if (!source.types.includes("deb") || !source.suites.includes(suite)) continue;
    const uri = source.uris.find((u) => /^https?:\/\//.test(u) && !/security/.test(u));
    if (uri) return uri.replace(/\/+$/, "");
  }
  return undefined;
}

async function readAptSources(sources: typeof APT_SOURCES): Promise<AptSource[]> {
  const parsed = parseOneLineSources(await readOptional(sources.list));
  const names = await readdir(sources.dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".sources")).sort()) {
    parsed.push(...parseDeb822Sources(await readOptional(join(sources.dir, name))));
  }
  return parsed;
}

async function readOptional(path: string): Promise<string> {
  return readFile(path, "utf8").catch(() => "");
}

/** `deb [options] URI SUITE COMPONENT...` lines. */
export function parseOneLineSources(text: string): AptSource[] {
  return text.split("\n").flatMap((raw) => {
    const line = raw
      .replace(/#.*/, "")
      .replace(/\[[^\]]*\]/, " ")
      .trim();
    const [type, uri, suite] = line.split(/\s+/);
    return type && uri && suite ? [{ types: [type], uris: [uri], suites: [suite] }] : [];
  });
}

/** deb822 stanzas (`Types:`, `URIs:`, `Suites:`), separated by blank lines. */
export function parseDeb822Sources(text: string): AptSource[] {
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const fields = new Map<string, string[]>();
      for (const line of stanza.split("\n")) {
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line.replace(/#.*/, ""));
        if (match) fields.set(match[1]!.toLowerCase(), match[2]!.trim().split(/\s+/));
      }
      if (fields.get("enabled")?.[0]?.toLowerCase() === "no") return undefined;
      return {
        types: fields.get("types") ?? [],
        uris: fields.get("uris") ?? [],
        suites: fields.get("suites") ?? [],
      };
    })
    .filter((s): s is AptSource => s !== undefined && s.uris.length > 0);
}
