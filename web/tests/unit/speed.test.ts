import { describe, expect, it } from "vitest";
import { tokensPerSecond } from "../../src/lib/speed";

describe("tokensPerSecond", () => {
  it("counts from the first token to the last", () => {
    expect(tokensPerSecond(50, 0, 1000, 3000)).toBe(25);
  });

  it("counts from the request when everything came at once", () => {
    expect(tokensPerSecond(35, 0, 1470, 1471)).toBeCloseTo(35 / 1.471);
  });

  it("has none without tokens or a first token", () => {
    expect(tokensPerSecond(undefined, 0, 10, 20)).toBeUndefined();
    expect(tokensPerSecond(0, 0, 10, 20)).toBeUndefined();
    expect(tokensPerSecond(5, 0, undefined, 20)).toBeUndefined();
  });
});
