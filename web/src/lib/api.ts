// The server's API as the page uses it: the same routes, keys and errors as
// any client. Nothing here reaches around auth, scopes or budgets.
import { events } from "./sse";
import type { ToolCallDelta } from "./tools";
import type { Message } from "./tree";

const KEY = "ferrite.key";

/** An answer the server refused, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function savedKey(): string {
  return localStorage.getItem(KEY) ?? "";
}

export function saveKey(key: string): void {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** The words of an error body in OpenAI's shape, or its text. */
export function errorMessage(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body);
    const message = parsed?.error?.message ?? parsed?.error ?? parsed?.message;
    if (typeof message === "string" && message) return message;
  } catch {
    // Not JSON: the text itself says it.
  }
  return body.trim() || `The server answered ${status}.`;
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = savedKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  if (init.body && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "The server cannot be reached. Is ferrite still running?");
  }
  if (!response.ok) {
    throw new ApiError(response.status, errorMessage(response.status, await response.text()));
  }
  return response;
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await call(path, init)).json() as Promise<T>;
}

export interface Model {
  id: string;
  type: string;
  state: string;
  quantization: string;
  max_context_length: number;
  runtime: string;
  arch: string;
}

export async function models(): Promise<Model[]> {
  return (await json<{ data: Model[] }>("/api/v0/models")).data;
}

export interface Summary {
  id: string;
  title: string;
  created_at: number;
  updated_at: number;
  model: string | null;
  message_count: number;
}

export interface Conversation {
  id: string;
  title: string;
  created_at: number;
  updated_at: number;
  model: string | null;
  system_prompt: string | null;
  settings: Record<string, unknown> | null;
  messages: Message[];
  current: string | null;
}

export type ConversationWrite = Omit<Conversation, "id" | "created_at" | "updated_at">;

const CONVERSATIONS = "/v1/app/conversations";

export async function conversations(search = ""): Promise<Summary[]> {
  const query = search.trim() ? `?search=${encodeURIComponent(search.trim())}` : "";
  return (await json<{ data: Summary[] }>(`${CONVERSATIONS}${query}`)).data;
}

export function conversation(id: string): Promise<Conversation> {
  return json(`${CONVERSATIONS}/${encodeURIComponent(id)}`);
}

export function createConversation(write: ConversationWrite): Promise<Conversation> {
  return json(CONVERSATIONS, { method: "POST", body: JSON.stringify(write) });
}

export function saveConversation(id: string, write: ConversationWrite): Promise<Conversation> {
  return json(`${CONVERSATIONS}/${encodeURIComponent(id)}`, {
    method: "PUT",
    body: JSON.stringify(write),
  });
}

export async function deleteConversation(id: string): Promise<void> {
  await call(`${CONVERSATIONS}/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export async function exportConversations(): Promise<string> {
  return (await call(`${CONVERSATIONS}/export`)).text();
}

export async function importConversations(file: string): Promise<Summary[]> {
  return (await json<{ data: Summary[] }>(`${CONVERSATIONS}/import`, { method: "POST", body: file })).data;
}

/** One piece of a streamed answer. */
export interface Delta {
  content?: string;
  thinking?: string;
  finish_reason?: string;
  completion_tokens?: number;
  tool_calls?: ToolCallDelta[];
}

/** A chat request's body, streamed. */
export interface ChatBody {
  model: string;
  messages: unknown[];
  [option: string]: unknown;
}

export async function* streamChat(body: ChatBody, signal: AbortSignal): AsyncGenerator<Delta> {
  const response = await call("/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.body) return;
  for await (const data of events(response.body)) {
    const chunk = JSON.parse(data);
    if (chunk.error) throw new ApiError(500, errorMessage(500, data));
    const choice = chunk.choices?.[0];
    const delta = choice?.delta ?? {};
    yield {
      content: delta.content ?? undefined,
      thinking: delta.reasoning_content ?? delta.reasoning ?? undefined,
      finish_reason: choice?.finish_reason ?? undefined,
      completion_tokens: chunk.usage?.completion_tokens,
      tool_calls: delta.tool_calls?.map(
        (t: { index: number; id?: string; function?: { name?: string; arguments?: string } }) => ({
          index: t.index,
          id: t.id,
          name: t.function?.name,
          arguments: t.function?.arguments,
        }),
      ),
    };
  }
}

/** A path of messages as the chat API takes them. */
export function chatMessages(system: string | null, path: Message[]): unknown[] {
  const out: unknown[] = [];
  if (system?.trim()) out.push({ role: "system", content: system });
  for (const m of path) {
    let text = m.content;
    for (const f of m.files ?? []) text += `\n\n<file name="${f.name}">\n${f.text}\n</file>`;
    if (m.images?.length) {
      out.push({
        role: m.role,
        content: [
          { type: "text", text },
          ...m.images.map((url) => ({ type: "image_url", image_url: { url } })),
        ],
      });
    } else if (m.tool_calls?.length) {
      out.push({
        role: m.role,
        content: text || null,
        tool_calls: m.tool_calls.map((c) => ({
          id: c.id,
          type: "function",
          function: { name: c.name, arguments: c.arguments },
        })),
      });
    } else {
      out.push({ role: m.role, content: text });
    }
  }
  return out;
}

/** A model as LM Studio's REST API v1 lists it, with ferrite's figures. */
export interface Instance {
  id: string;
  config: { context_length: number };
  status: string;
  idle_seconds: number;
  ttl_seconds: number | null;
  expires_in_seconds: number | null;
  in_flight: number;
  memory_bytes: number;
}

export interface DownloadedModel {
  type: string;
  key: string;
  quantization: { name: string } | null;
  size_bytes: number;
  format: string;
  max_context_length: number;
  loaded_instances: Instance[];
  runtime: string;
  capabilities?: { vision: boolean };
}

export async function downloaded(): Promise<DownloadedModel[]> {
  return (await json<{ models: DownloadedModel[] }>("/api/v1/models")).models;
}

/** Loads `model`, reporting progress from 0 to 1 as it comes. */
export async function loadModel(
  model: string,
  options: { context_length?: number; ttl?: number },
  onprogress: (fraction: number, phase: string) => void,
): Promise<void> {
  const response = await call("/api/v1/models/load", {
    method: "POST",
    body: JSON.stringify({ model, ...options, stream: true }),
  });
  if (!response.body) return;
  for await (const data of events(response.body)) {
    const event = JSON.parse(data);
    if (event.error) throw new ApiError(500, errorMessage(500, data));
    if (typeof event.progress === "number") onprogress(event.progress, event.phase ?? "");
    if (event.status === "loaded") onprogress(1, "loaded");
  }
}

export async function unloadModel(instance: string): Promise<void> {
  await call("/api/v1/models/unload", { method: "POST", body: JSON.stringify({ instance_id: instance }) });
}

/** A repo on the Hub that matched a search. */
export interface SearchHit {
  id: string;
  downloads: number;
  likes: number;
  gguf: boolean;
}

export async function searchHub(query: string): Promise<SearchHit[]> {
  const q = encodeURIComponent(query.trim());
  return (await json<{ results: SearchHit[] }>(`/api/v1/models/download/search?query=${q}&limit=20`)).results;
}

/** One quantization a repo offers. */
export interface DownloadOption {
  quantization: string;
  size_bytes: number;
  files: string[];
  recommended: boolean;
}

export async function downloadOptions(model: string): Promise<DownloadOption[]> {
  const q = encodeURIComponent(model);
  return (await json<{ options: DownloadOption[] }>(`/api/v1/models/download/options?model=${q}`)).options;
}

/** A download job as LM Studio's REST API reports it. */
export interface DownloadStatus {
  job_id?: string;
  status: string;
  total_size_bytes?: number;
  downloaded_bytes?: number;
  bytes_per_second?: number;
  estimated_completion?: string;
  error?: string;
  model?: string;
  quantization?: string;
  model_key?: string;
}

export function startDownload(model: string, quantization: string): Promise<DownloadStatus> {
  return json("/api/v1/models/download", { method: "POST", body: JSON.stringify({ model, quantization }) });
}

export function downloadStatus(job: string): Promise<DownloadStatus> {
  return json(`/api/v1/models/download/status/${encodeURIComponent(job)}`);
}

export function cancelDownload(job: string): Promise<DownloadStatus> {
  return json(`/api/v1/models/download/${encodeURIComponent(job)}`, { method: "DELETE" });
}

/** The server's metrics in Prometheus' text format. */
export async function metrics(): Promise<string> {
  return (await call("/metrics")).text();
}
