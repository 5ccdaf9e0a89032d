import { describe, expect, it } from "vitest";
import { mergeToolCalls, parseTools, prettyArguments } from "../../src/lib/tools";

describe("mergeToolCalls", () => {
  it("joins a call's pieces by index", () => {
    const calls = mergeToolCalls([], [{ index: 0, id: "call_1", name: "get_weather", arguments: "" }]);
    mergeToolCalls(calls, [{ index: 0, arguments: '{"city":' }, { index: 1, id: "call_2", name: "now" }]);
    mergeToolCalls(calls, [{ index: 0, arguments: ' "Paris"}' }]);
    expect(calls).toEqual([
      { id: "call_1", name: "get_weather", arguments: '{"city": "Paris"}' },
      { id: "call_2", name: "now", arguments: "" },
    ]);
  });
});

describe("prettyArguments", () => {
  it("indents JSON and leaves anything else as it came", () => {
    expect(prettyArguments('{"city":"Paris"}')).toBe('{\n  "city": "Paris"\n}');
    expect(prettyArguments("{not json")).toBe("{not json");
  });
});

describe("parseTools", () => {
  it("takes one tool or an array of them, and names what is wrong", () => {
    const tool = { type: "function", function: { name: "get_weather", parameters: { type: "object" } } };
    expect(parseTools(JSON.stringify(tool))).toEqual([tool]);
    expect(parseTools(JSON.stringify([tool, tool]))).toHaveLength(2);
    expect(parseTools("  ")).toBeUndefined();
    expect(() => parseTools("[{}]")).toThrow("Each tool needs");
    expect(() => parseTools("[")).toThrow();
  });
});
