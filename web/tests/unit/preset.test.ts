import { describe, expect, it } from "vitest";
import { fromLmStudio, requestFields } from "../../src/lib/preset";

describe("presets", () => {
  it("read LM Studio's preset files", () => {
    const file = {
      identifier: "@local:precise",
      name: "Precise",
      operation: {
        fields: [
          { key: "llm.prediction.temperature", value: 0.2 },
          { key: "llm.prediction.maxPredictedTokens", value: { checked: true, value: 256 } },
          { key: "llm.prediction.topPSampling", value: { checked: false, value: 0.9 } },
          { key: "llm.prediction.topKSampling", value: 40 },
          { key: "llm.prediction.repeatPenalty", value: { checked: true, value: 1.1 } },
          { key: "llm.prediction.contextOverflowPolicy", value: "rollingWindow" },
          { key: "llm.prediction.systemPrompt", value: "Be brief." },
          { key: "llm.prediction.llama.cpuThreads", value: 4 },
        ],
      },
      load: { fields: [] },
    };
    expect(fromLmStudio(file)).toEqual({
      temperature: 0.2,
      max_tokens: 256,
      top_k: 40,
      repeat_penalty: 1.1,
      context_overflow: "rolling_window",
      system_prompt: "Be brief.",
    });
    expect(() => fromLmStudio({ name: "x" })).toThrow("Not an LM Studio preset");
  });

  it("send only what is set, never the system prompt", () => {
    expect(requestFields({ temperature: 0, max_tokens: NaN, top_p: undefined, system_prompt: "x" })).toEqual({
      temperature: 0,
    });
  });
});
