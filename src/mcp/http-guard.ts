/**
 * Where `pyro mcp serve --http` listens, and which requests it refuses before anything
 * else looks at them: DNS rebinding protection. A web page the user visits can make the
 * browser send requests to 127.0.0.1 under the page's own name (its DNS answer changed to
 * 127.0.0.1), so a loopback server accepts only loopback names in `Host` and, when a
 * browser sends one, in `Origin`. The bearer token is the second line of defence.
 */
import { isIP } from "node:net";
import { PyroError } from "../contract/errors.js";

export interface ListenAddress {
  host: string;
  /** 0 lets the system choose; the server logs the port it got. */
  port: number;
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/**
 * `--http [HOST:]PORT` as an address: `8080`, `127.0.0.1:8080`, `0.0.0.0:8080`,
 * `[::1]:8080`. The host defaults to 127.0.0.1: listening beyond this machine is a choice
 * the user states.
 *
 * @throws PyroError `invalid_argument` naming the accepted forms.
 */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[2]);
  const bracketed = match?.[1];
  const host = bracketed?.startsWith("[") ? bracketed.slice(1, -1) : (bracketed ?? "127.0.0.1");
  if (!match || port > 65535 || (bracketed?.startsWith("[") && isIP(host) !== 6)) {
    throw new PyroError(
      "invalid_argument",
      `--http ${JSON.stringify(text)} is not [HOST:]PORT; use e.g. 8080, 127.0.0.1:8080 or [::1]:8080 (port 0-65535)`,
      { details: { field: "http", value: text } },
    );
  }
  return { host, port };
}

/** Whether listening on `host` keeps the server on this machine. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase();
  return LOOPBACK_NAMES.has(name) || (isIP(name) === 4 && name.startsWith("127."));
}

/**
 * Why a request must be refused with 403, or `undefined` to let it through.
 * Loopback bind: `Host` must name the loopback and `Origin`, when present, too.
 * Other binds (a remote build box): `Host` is whatever name the box has, so only a
 * cross-site `Origin` (one that differs from `Host`) is refused.
 */
export function originRefusal(
  headers: { host?: string; origin?: string },
  listen: ListenAddress,
): string | undefined {
  const host = hostnameOf(`http://${headers.host ?? ""}`);
  if (isLoopbackHost(listen.host)) {
    if (host === undefined || !isLoopbackHost(host)) {
      return `Host ${JSON.stringify(headers.host ?? "")} is not a loopback name`;
    }
    if (headers.origin === undefined) return undefined;
    const origin = hostnameOf(headers.origin);
    if (origin === undefined || !isLoopbackHost(origin)) {
      return `Origin ${JSON.stringify(headers.origin)} is not a loopback origin`;
    }
    return undefined;
  }
  if (headers.origin === undefined) return undefined;
  const originHost = authorityOf(headers.origin);
  if (originHost === undefined || originHost !== headers.host?.toLowerCase()) {
    return `Origin ${JSON.stringify(headers.origin)} is not this server's origin`;
  }
  return undefined;
}

/** An http(s) URL, lower-cased; undefined for anything else. */
function webUrl(url: string): URL | undefined {
  try {
    const parsed = new URL(url.toLowerCase());
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

const hostnameOf = (url: string) => webUrl(url)?.hostname;
/** `host[:port]` of an origin as a `Host` header would spell it. */
const authorityOf = (url: string) => webUrl(url)?.host;
