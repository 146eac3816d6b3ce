import { needlesOf, type Needle, type SecretValue } from "./forms.js";

export type { SecretValue } from "./forms.js";

/**
 * Replaces every secret value (and its base64 forms, `forms.ts`) in output with
 * `[REDACTED:NAME]`, also when the output arrives in chunks that split a value.
 *
 * A stream holds back the tail that could still grow into a secret (the longest suffix of
 * what it has that is a proper prefix of some form) and emits the rest, so clear bytes
 * that leave it can never be part of a later match. When forms overlap (a value and its
 * trimmed form, or two secrets sharing bytes), a match that crosses the held-back tail is
 * emitted whole as a marker; a later match that began inside it is found again through a
 * look-behind of already-emitted bytes and its remaining bytes become a marker too. Only
 * then is a look-behind kept, so a stream's usual step costs its held tail plus the chunk.
 */
export class Redactor {
  private readonly needles: CompiledNeedle[];
  private readonly lookbehindBytes: number;

  constructor(secrets: readonly SecretValue[]) {
    this.needles = needlesOf(secrets).map(compile);
    const longest = Math.max(0, ...this.needles.map((n) => n.bytes.length));
    // Base64 forms are matched across line breaks: leave room for one per 76 characters.
    this.lookbehindBytes = Math.ceil(longest * 1.1) + 8;
  }

  /** True when there is nothing to redact: callers may skip the work. */
  get empty(): boolean {
    return this.needles.length === 0;
  }

  /** A redactor for one output stream (stdout, stderr, a log, a shell's output). */
  stream(): RedactionStream {
    return new RedactionStream(this.needles, this.lookbehindBytes);
  }

  /**
   * For output read by cursor (shell reads), where no stream survives between calls:
   * `data` follows `context` (bytes already shown before it). Returns the shown form of
   * the longest prefix of `data` that is safe to show now, and that prefix's length; the
   * rest must be read again later. `final`: nothing more will follow `data`.
   */
  window(context: Buffer, data: Buffer, final: boolean): { output: Buffer; consumed: number } {
    if (this.empty) return { output: data, consumed: data.length };
    const stream = this.stream();
    const lookbehind = context.subarray(Math.max(0, context.length - this.lookbehindBytes));
    return stream.emitAfter(lookbehind, data, final);
  }

  /** Bytes of already-shown output a {@link window} needs as its context. */
  get contextBytes(): number {
    return this.lookbehindBytes;
  }

  /** `truncated`: the bytes were cut at a size bound (see {@link RedactionStream.end}). */
  redactBytes(bytes: Buffer, options: { truncated?: boolean } = {}): Buffer {
    if (this.empty) return bytes;
    const stream = this.stream();
    return Buffer.concat([stream.push(bytes), stream.end(options)]);
  }

  redact(text: string): string {
    if (this.empty) return text;
    return this.redactBytes(Buffer.from(text, "utf8")).toString("utf8");
  }
}

/** Redacts `text` of every value in `secrets` (the one-shot form of {@link Redactor}). */
export function redact(text: string, secrets: readonly SecretValue[]): string {
  return new Redactor(secrets).redact(text);
}

export const redactionMarker = (name: string) => `[REDACTED:${name}]`;

interface CompiledNeedle extends Needle {
  /** KMP failure function: longest proper border of bytes[0..i]. */
  border: Int32Array;
}

interface Match {
  start: number;
  end: number;
  name: string;
}

/** A stream's state; see {@link Redactor}. `push` and `end` return what may be shown. */
export class RedactionStream {
  /** Already emitted bytes kept to find matches that began before the last emit. */
  private lookbehind: Buffer = Buffer.alloc(0);
  /** Received, not yet emitted. */
  private held: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(
    private readonly needles: readonly CompiledNeedle[],
    private readonly lookbehindBytes: number,
  ) {}

  push(chunk: Buffer): Buffer {
    if (this.ended) throw new Error("RedactionStream.push after end");
    if (this.needles.length === 0) return chunk;
    return this.emit(Buffer.concat([this.lookbehind, this.held, chunk]), false).output;
  }

  /** One step of a stream that starts after `lookbehind` (see Redactor.window). */
  emitAfter(lookbehind: Buffer, data: Buffer, final: boolean) {
    this.lookbehind = Buffer.from(lookbehind);
    const { output, cut } = this.emit(Buffer.concat([lookbehind, data]), final);
    return { output, consumed: cut - lookbehind.length };
  }

  /**
   * Everything still held, redacted: the stream is over, no match can grow any more. With
   * `truncated` (the output was cut at a size bound) a tail that is the start of a secret
   * is redacted too: the cut may have fallen inside the value.
   */
  end(options: { truncated?: boolean } = {}): Buffer {
    if (this.ended) return Buffer.alloc(0);
    this.ended = true;
    if (this.needles.length === 0) return Buffer.alloc(0);
    const work = Buffer.concat([this.lookbehind, this.held]);
    return this.emit(work, true, options.truncated ?? false).output;
  }

  private emit(work: Buffer, final: boolean, cutShort = false): { output: Buffer; cut: number } {
    const boundary = this.lookbehind.length;
    const views = [plainView(work), lineBreaksSkipped(work)];
    const matches = views
      .flatMap((view) => findMatches(view, this.needles))
      .filter(
        (m) => m.end > boundary, // wholly emitted before
      );
    const pending = cutShort ? firstPending(views, this.needles) : undefined;
    if (pending) matches.push({ start: pending.start, end: work.length, name: pending.name });
    const { cut, pastMatch } = final
      ? { cut: work.length, pastMatch: false }
      : cutPoint(work.length, boundary, views, this.needles, matches);
    const output = render(work, boundary, cut, matches);
    // Without a cut moved past a match, no later match can begin before the cut.
    const keep = pastMatch ? this.lookbehindBytes : 0;
    this.lookbehind = Buffer.from(work.subarray(Math.max(0, cut - keep), cut));
    this.held = Buffer.from(work.subarray(cut));
    return { output, cut };
  }
}

/** The bytes needles are matched against, and where each came from in the work buffer. */
interface View {
  bytes: Buffer;
  /** original[i] = work index of view byte i; undefined when the view is the work itself. */
  original: Int32Array | undefined;
  ignoreLineBreaks: boolean;
}

const plainView = (work: Buffer): View => ({
  bytes: work,
  original: undefined,
  ignoreLineBreaks: false,
});

function lineBreaksSkipped(work: Buffer): View {
  const bytes = Buffer.alloc(work.length);
  const original = new Int32Array(work.length);
  let n = 0;
  for (let i = 0; i < work.length; i++) {
    const byte = work[i]!;
    if (byte === 0x0a || byte === 0x0d) continue;
    bytes[n] = byte;
    original[n++] = i;
  }
  return { bytes: bytes.subarray(0, n), original: original.subarray(0, n), ignoreLineBreaks: true };
}

const toWork = (view: View, index: number) => (view.original ? view.original[index]! : index);

function findMatches(view: View, needles: readonly CompiledNeedle[]): Match[] {
  const matches: Match[] = [];
  for (const needle of needles) {
    if (needle.ignoreLineBreaks !== view.ignoreLineBreaks) continue;
    for (let at = view.bytes.indexOf(needle.bytes); at >= 0;) {
      const last = at + needle.bytes.length - 1;
      matches.push({ start: toWork(view, at), end: toWork(view, last) + 1, name: needle.name });
      at = view.bytes.indexOf(needle.bytes, at + 1);
    }
  }
  return matches;
}

/**
 * Where emitting stops: before the earliest tail that may still grow into a match, but
 * never inside a complete match: one that crosses is emitted whole (as its marker), and
 * what follows it stays held, since the tail that may still grow began before its end.
 */
function cutPoint(
  length: number,
  boundary: number,
  views: readonly View[],
  needles: readonly CompiledNeedle[],
  matches: readonly Match[],
): { cut: number; pastMatch: boolean } {
  const pending = firstPending(views, needles);
  if (pending === undefined) return { cut: length, pastMatch: false };
  let cut = Math.max(boundary, pending.start);
  for (let pastMatch = boundary > pending.start; ; pastMatch = true) {
    const crossing = matches.filter((m) => m.start < cut && m.end > cut);
    if (crossing.length === 0) return { cut, pastMatch };
    cut = Math.max(...crossing.map((m) => m.end));
  }
}

/** The earliest work position where a suffix of the work is a proper prefix of a needle. */
function firstPending(
  views: readonly View[],
  needles: readonly CompiledNeedle[],
): { start: number; name: string } | undefined {
  let first: { start: number; name: string } | undefined;
  for (const view of views) {
    for (const needle of needles) {
      if (needle.ignoreLineBreaks !== view.ignoreLineBreaks) continue;
      // The longest such prefix starts earliest; its borders (shorter ones) start later.
      const length = longestPrefixAtEnd(view.bytes, needle);
      if (length === 0) continue;
      const start = toWork(view, view.bytes.length - length);
      if (first === undefined || start < first.start) first = { start, name: needle.name };
    }
  }
  return first;
}

/** The longest proper prefix of the needle that the bytes end with (KMP over the tail). */
function longestPrefixAtEnd(bytes: Buffer, needle: CompiledNeedle): number {
  const pattern = needle.bytes;
  let state = 0;
  for (let i = Math.max(0, bytes.length - (pattern.length - 1)); i < bytes.length; i++) {
    while (state > 0 && bytes[i] !== pattern[state]) state = needle.border[state - 1]!;
    if (bytes[i] === pattern[state]) state++;
    if (state === pattern.length) state = needle.border[state - 1]!;
  }
  return state;
}

/**
 * The bytes [boundary, cut) with each run of overlapping matches replaced by the markers
 * of the secrets in it (in order, each once). The part of a run before `boundary` was
 * already emitted as a marker of its own.
 */
function render(work: Buffer, boundary: number, cut: number, matches: readonly Match[]): Buffer {
  const inside = matches
    .filter((m) => m.start < cut && m.end > boundary)
    .sort((a, b) => a.start - b.start || b.end - a.end);
  const parts: Buffer[] = [];
  let position = boundary;
  for (let i = 0; i < inside.length;) {
    const names: string[] = [];
    const runStart = Math.max(boundary, inside[i]!.start);
    let runEnd = runStart;
    for (; i < inside.length && inside[i]!.start < Math.max(runEnd, runStart + 1); i++) {
      runEnd = Math.max(runEnd, Math.min(cut, inside[i]!.end));
      if (!names.includes(inside[i]!.name)) names.push(inside[i]!.name);
    }
    if (runStart > position) parts.push(work.subarray(position, runStart));
    parts.push(Buffer.from(names.map(redactionMarker).join("")));
    position = runEnd;
  }
  if (cut > position) parts.push(work.subarray(position, cut));
  return Buffer.concat(parts);
}

function compile(needle: Needle): CompiledNeedle {
  const pattern = needle.bytes;
  const border = new Int32Array(pattern.length);
  for (let i = 1, k = 0; i < pattern.length; i++) {
    while (k > 0 && pattern[i] !== pattern[k]) k = border[k - 1]!;
    if (pattern[i] === pattern[k]) k++;
    border[i] = k;
  }
  return { ...needle, border };
}
