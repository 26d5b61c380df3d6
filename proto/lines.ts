/**
 * Line framing for text streams: `LineStream` splits text into lines, and
 * `jsonLines()` reads an NDJSON byte stream (the control API's answers, a followed
 * log) as parsed values. Pure stream transforms, no I/O of their own.
 *
 * @module
 */

/** Splits a text stream into lines, without their `\n`; a last unterminated line is kept. */
export class LineStream extends TransformStream<string, string> {
  constructor() {
    let rest = "";
    super({
      transform(text, ctrl) {
        const parts = (rest + text).split("\n");
        rest = parts.pop()!;
        for (const line of parts) ctrl.enqueue(line);
      },
      flush(ctrl) {
        if (rest) ctrl.enqueue(rest);
      },
    });
  }
}

/** The JSON value of every non-empty line of an NDJSON byte stream, as they come. */
export async function* jsonLines<T = unknown>(
  bytes: ReadableStream<Uint8Array>,
): AsyncGenerator<T> {
  const lines = bytes.pipeThrough(new TextDecoderStream()).pipeThrough(new LineStream());
  for await (const line of lines) if (line) yield JSON.parse(line) as T;
}
