// Tool calls as a chat stream sends them: pieces of a call (its id and name
// first, its arguments in parts) that arrive by index.
import type { ToolCall } from "./tree";

/** A piece of a tool call from a stream's delta. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  name?: string;
  arguments?: string;
}

/** `calls` with the pieces added, in place. */
export function mergeToolCalls(calls: ToolCall[], pieces: ToolCallDelta[]): ToolCall[] {
  for (const piece of pieces) {
    const call = (calls[piece.index] ??= { id: "", name: "", arguments: "" });
    if (piece.id) call.id = piece.id;
    if (piece.name) call.name += piece.name;
    if (piece.arguments) call.arguments += piece.arguments;
  }
  return calls;
}

/** Arguments as indented JSON, or as they came when they do not parse. */
export function prettyArguments(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Tools from the settings' text: OpenAI's tool definitions, as an array. */
export function parseTools(text: string): unknown[] | undefined {
  if (!text.trim()) return undefined;
  const parsed: unknown = JSON.parse(text);
  const tools = Array.isArray(parsed) ? parsed : [parsed];
  for (const tool of tools) {
    const name = (tool as { function?: { name?: unknown } })?.function?.name;
    if (typeof name !== "string" || !name) {
      throw new Error('Each tool needs `{"type": "function", "function": {"name": ...}}`.');
    }
  }
  return tools;
}
