import { describe, expect, it } from "vitest";
import { errorMessage } from "../../src/lib/api";
import { events } from "../../src/lib/sse";

function body(...chunks: string[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(bytes.encode(c));
      controller.close();
    },
  });
}

async function all(stream: ReadableStream<Uint8Array>): Promise<string[]> {
  const out = [];
  for await (const e of events(stream)) out.push(e);
  return out;
}

describe("server-sent events", () => {
  it("joins events split anywhere, even inside a character", async () => {
    const text = 'data: {"a":"é"}\n\ndata: {"b":2}\r\n\r\ndata: [DONE]\n\n';
    const whole = new TextEncoder().encode(text);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < whole.length; i += 3) controller.enqueue(whole.slice(i, i + 3));
        controller.close();
      },
    });
    expect(await all(stream)).toEqual(['{"a":"é"}', '{"b":2}']);
  });

  it("stops at [DONE] and skips comments", async () => {
    expect(await all(body(": keep-alive\n\n", "data: 1\n\n", "data: [DONE]\n\n", "data: 2\n\n"))).toEqual(["1"]);
  });

  it("keeps a last event with no blank line after it", async () => {
    expect(await all(body("data: 1\n\ndata: 2\n"))).toEqual(["1", "2"]);
  });
});

describe("error bodies", () => {
  it("reads OpenAI's, Ollama's and plain shapes", () => {
    expect(errorMessage(404, '{"error":{"message":"No model `x`."}}')).toBe("No model `x`.");
    expect(errorMessage(400, '{"error":"bad"}')).toBe("bad");
    expect(errorMessage(502, "Bad gateway")).toBe("Bad gateway");
    expect(errorMessage(500, "")).toBe("The server answered 500.");
  });
});
