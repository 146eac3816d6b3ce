/**
 * Reads the server name (SNI) from a TLS ClientHello, so a CONNECT tunnel to an allowed
 * name cannot carry TLS for another one, nor anything that is not TLS.
 */

/** A ClientHello bigger than this (it is ~2 KiB even with post-quantum key shares) is refused. */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

export type ClientHelloResult =
  { kind: "need-more" } | { kind: "not-tls" } | { kind: "server-name"; name: string | null };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;

/**
 * Parses the start of a tunnel's client bytes; `need-more` until the whole ClientHello is
 * in. The caller bounds how much it buffers (MAX_CLIENT_HELLO_BYTES plus record headers).
 */
export function readClientHello(data: Buffer): ClientHelloResult {
  const handshake = handshakeBytes(data);
  if (handshake.kind !== "bytes") return handshake;
  const body = handshake.bytes;
  if (body.length < 4) return { kind: "need-more" };
  if (body[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "not-tls" };
  const length = body.readUIntBE(1, 3);
  if (length > MAX_CLIENT_HELLO_BYTES) return { kind: "not-tls" };
  if (body.length < 4 + length) return { kind: "need-more" };
  try {
    return { kind: "server-name", name: serverName(body.subarray(4, 4 + length)) };
  } catch {
    return { kind: "not-tls" };
  }
}

/** Joins the payloads of the leading handshake records (a ClientHello may span several). */
function handshakeBytes(
  data: Buffer,
): { kind: "bytes"; bytes: Buffer } | { kind: "need-more" } | { kind: "not-tls" } {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 5 <= data.length) {
    if (data[offset] !== RECORD_HANDSHAKE || data[offset + 1] !== 0x03) return { kind: "not-tls" };
    const length = data.readUInt16BE(offset + 3);
    if (offset + 5 + length > data.length) break;
    parts.push(data.subarray(offset + 5, offset + 5 + length));
    offset += 5 + length;
  }
  if (parts.length === 0) return { kind: "need-more" };
  return { kind: "bytes", bytes: Buffer.concat(parts) };
}

/** Walks a ClientHello body to the server_name extension; throws on a malformed one. */
function serverName(hello: Buffer): string | null {
  let at = 2 + 32; // client_version, random
  at += 1 + byteAt(hello, at); // session_id
  at += 2 + hello.readUInt16BE(at); // cipher_suites
  at += 1 + byteAt(hello, at); // compression_methods
  if (at === hello.length) return null; // no extensions at all
  const end = at + 2 + hello.readUInt16BE(at);
  if (end > hello.length) throw new RangeError("extensions overrun");
  at += 2;
  while (at + 4 <= end) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    if (at + 4 + length > end) throw new RangeError("extension overruns");
    if (type === EXTENSION_SERVER_NAME) return hostName(hello.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return null;
}

/** The first host_name entry of a server_name extension. */
function hostName(extension: Buffer): string | null {
  const listEnd = 2 + extension.readUInt16BE(0);
  let at = 2;
  while (at + 3 <= Math.min(listEnd, extension.length)) {
    const type = extension[at]!;
    const length = extension.readUInt16BE(at + 1);
    if (at + 3 + length > extension.length) throw new RangeError("server name overruns");
    if (type === 0) return extension.subarray(at + 3, at + 3 + length).toString("latin1");
    at += 3 + length;
  }
  return null;
}

function byteAt(buffer: Buffer, at: number): number {
  if (at >= buffer.length) throw new RangeError("ClientHello truncated");
  return buffer[at]!;
}
