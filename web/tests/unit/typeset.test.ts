import { describe, expect, it } from "vitest";
import { needsTypesetting } from "../../src/lib/typeset";

// Rendering itself needs a DOM (DOMPurify): the browser test covers it.
describe("needsTypesetting", () => {
  it("is true for code and math only", () => {
    expect(needsTypesetting("Plain **bold** text.")).toBe(false);
    expect(needsTypesetting("```js\nx\n```")).toBe(true);
    expect(needsTypesetting("Costs $5")).toBe(true);
    expect(needsTypesetting("list:\n    indented code")).toBe(true);
  });
});
