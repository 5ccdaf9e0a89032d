// Server-sent events as OpenAI's chat stream sends them: `data:` lines,
// events apart by a blank line, ending with `data: [DONE]`.

/** Each event's data, in order, until `[DONE]` or the end of the body. */
export async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (data.length) {
            const event = data.join("\n");
            data = [];
            if (event === "[DONE]") return;
            yield event;
          }
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      }
      if (done) {
        if (data.length && data.join("\n") !== "[DONE]") yield data.join("\n");
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
