/**
 * Hand-made ustar blocks, so a test controls names, types and sizes exactly (node-tar's
 * own writer refuses to make most of the hostile archives the extractor must refuse).
 */

export interface RawEntry {
  name: string;
  /** ustar type flag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" dir, "6" FIFO. */
  type?: string;
  size?: number;
  linkname?: string;
  mode?: number;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, length, "ascii");
}

/** GNU base-256 for sizes the 11 octal digits cannot hold (over 8 GiB). */
function writeSize(block: Buffer, value: number): void {
  if (value < 8 ** 11) return writeOctal(block, 124, 12, value);
  const field = Buffer.alloc(12);
  field[0] = 0x80;
  field.writeBigUInt64BE(BigInt(value), 4);
  field.copy(block, 124);
}

/** Recomputes a header block's checksum (in place), e.g. after changing a field. */
export function fixChecksum(block: Buffer): void {
  block.fill(" ", 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const byte of block.subarray(0, 512)) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
}

export function header({
  name,
  type = "0",
  size = 0,
  linkname = "",
  mode = 0o644,
}: RawEntry): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, "utf8");
  writeOctal(block, 100, 8, mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeSize(block, size);
  writeOctal(block, 136, 12, 1_700_000_000);
  block.write(type, 156, 1, "ascii");
  block.write(linkname, 157, 100, "utf8");
  block.write("ustar\u000000", 257, 8, "ascii");
  fixChecksum(block);
  return block;
}

export function entry(raw: RawEntry, content: string | Buffer = ""): Buffer {
  const body = Buffer.from(content);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header({ ...raw, size: raw.size ?? body.length }), body, padding]);
}

/** A pax extended header: its records override the next entry's ustar fields. */
export function pax(records: Record<string, string>): Buffer {
  const body = Object.entries(records)
    .map(([key, value]) => {
      const rest = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(rest) + 1;
      while (String(length).length + Buffer.byteLength(rest) !== length) length += 1;
      return `${length}${rest}`;
    })
    .join("");
  return entry({ name: "PaxHeader", type: "x" }, body);
}

/** Entries followed by the two zero blocks that end an archive. */
export function tar(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}
