// Presets: the sampling and context settings a chat request carries, kept
// in the browser and with each conversation. LM Studio's preset files
// (`*.preset.json`: `operation.fields` of `llm.prediction.*` keys) import.

export type Overflow = "error" | "truncate_middle" | "rolling_window" | "memagent";
export type Effort = "none" | "minimal" | "low" | "medium" | "high";

export interface Preset {
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  context_overflow?: Overflow;
  reasoning_effort?: Effort;
  system_prompt?: string;
  /** OpenAI's tool definitions: the model may call them; the page shows the calls. */
  tools?: unknown[];
  tool_choice?: "auto" | "required" | "none";
}

/** A limit on length, so that a small model's loop ends; change it freely. */
export const DEFAULT_PRESET: Preset = { temperature: 0.8, max_tokens: 1024 };

/** The request fields a preset sets (the system prompt goes as a message). */
export function requestFields(preset: Preset): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(preset)) {
    if (key !== "system_prompt" && value !== undefined && value !== "" && !Number.isNaN(value)) {
      fields[key] = value;
    }
  }
  return fields;
}

const OVERFLOW: Record<string, Overflow> = {
  stopAtLimit: "error",
  truncateMiddle: "truncate_middle",
  rollingWindow: "rolling_window",
};

/** An LM Studio field's value: plain, or `{checked, value}` when optional. */
function fieldValue(value: unknown): unknown {
  if (value && typeof value === "object" && "checked" in value) {
    const v = value as { checked: boolean; value: unknown };
    return v.checked ? v.value : undefined;
  }
  return value;
}

/** A preset from an LM Studio preset file; throws on another kind of file. */
export function fromLmStudio(file: unknown): Preset {
  const fields = (file as { operation?: { fields?: unknown } })?.operation?.fields;
  if (!Array.isArray(fields)) throw new Error("Not an LM Studio preset: it has no `operation.fields`.");
  const preset: Preset = {};
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  for (const field of fields as { key?: string; value?: unknown }[]) {
    const value = fieldValue(field.value);
    switch (field.key) {
      case "llm.prediction.temperature":
        preset.temperature = num(value);
        break;
      case "llm.prediction.maxPredictedTokens":
        preset.max_tokens = num(value);
        break;
      case "llm.prediction.topPSampling":
        preset.top_p = num(value);
        break;
      case "llm.prediction.topKSampling":
        preset.top_k = num(value);
        break;
      case "llm.prediction.minPSampling":
        preset.min_p = num(value);
        break;
      case "llm.prediction.repeatPenalty":
        preset.repeat_penalty = num(value);
        break;
      case "llm.prediction.contextOverflowPolicy":
        preset.context_overflow = typeof value === "string" ? OVERFLOW[value] : undefined;
        break;
      case "llm.prediction.systemPrompt":
        preset.system_prompt = typeof value === "string" ? value : undefined;
        break;
    }
  }
  return Object.fromEntries(Object.entries(preset).filter(([, v]) => v !== undefined)) as Preset;
}
