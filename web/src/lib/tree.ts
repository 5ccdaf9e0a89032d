// A conversation is a tree: each message names its parent, so an edit or a
// regeneration is a sibling of the message it replaces. The chat shows one
// path, from a root to the `current` leaf.

export interface Stats {
  tokens_per_second?: number;
  ttft_ms?: number;
  tokens?: number;
  stop_reason?: string;
}

export interface SavedFile {
  name: string;
  text: string;
}

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as the model wrote it. */
  arguments: string;
}

export interface Message {
  id: string;
  parent: string | null;
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  thinking?: string;
  model?: string;
  images?: string[];
  files?: SavedFile[];
  tool_calls?: ToolCall[];
  stats?: Stats;
  created_at: number;
}

/** The messages from the root down to `leaf`, in order. */
export function pathTo(messages: Message[], leaf: string | null): Message[] {
  const byId = new Map(messages.map((m) => [m.id, m]));
  const path: Message[] = [];
  const seen = new Set<string>();
  let at = leaf ? byId.get(leaf) : undefined;
  while (at && !seen.has(at.id)) {
    seen.add(at.id);
    path.push(at);
    at = at.parent ? byId.get(at.parent) : undefined;
  }
  return path.reverse();
}

/** The answers to `parent` (the first messages for `null`), oldest first. */
export function childrenOf(messages: Message[], parent: string | null): Message[] {
  return messages.filter((m) => (m.parent ?? null) === parent);
}

/** A message and its alternatives: the children of its parent. */
export function siblings(messages: Message[], id: string): Message[] {
  const m = messages.find((x) => x.id === id);
  return m ? childrenOf(messages, m.parent ?? null) : [];
}

/** Following the newest child from `id` down to a leaf. */
export function deepestLeaf(messages: Message[], id: string): string {
  let leaf = id;
  for (;;) {
    const kids = childrenOf(messages, leaf);
    if (kids.length === 0) return leaf;
    leaf = kids[kids.length - 1].id;
  }
}

/** The leaf shown after moving `delta` among `id`'s siblings, or `null`
 * when there is no sibling that way. */
export function switchBranch(messages: Message[], id: string, delta: number): string | null {
  const all = siblings(messages, id);
  const at = all.findIndex((m) => m.id === id);
  const next = all[at + delta];
  return next ? deepestLeaf(messages, next.id) : null;
}

/** A title from the first words of a message. */
export function titleFrom(text: string): string {
  const words = text.trim().replace(/\s+/g, " ");
  return words.length > 60 ? `${words.slice(0, 57)}...` : words || "New chat";
}

export function newId(): string {
  return crypto.randomUUID();
}
