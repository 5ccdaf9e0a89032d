import { describe, expect, it } from "vitest";
import { type Message, childrenOf, deepestLeaf, pathTo, siblings, switchBranch, titleFrom } from "../../src/lib/tree";

const m = (id: string, parent: string | null, role: Message["role"] = "user"): Message => ({
  id,
  parent,
  role,
  content: id,
  created_at: 0,
});

// q1 → a1 (regenerated as a2) → a2 followed by q2 → a3
const tree = [m("q1", null), m("a1", "q1", "assistant"), m("a2", "q1", "assistant"), m("q2", "a2"), m("a3", "q2", "assistant")];

describe("a conversation tree", () => {
  it("shows the path from the root to a leaf", () => {
    expect(pathTo(tree, "a3").map((x) => x.id)).toEqual(["q1", "a2", "q2", "a3"]);
    expect(pathTo(tree, "a1").map((x) => x.id)).toEqual(["q1", "a1"]);
    expect(pathTo(tree, null)).toEqual([]);
    expect(pathTo(tree, "missing")).toEqual([]);
  });

  it("survives a parent loop", () => {
    const loop = [m("x", "y"), m("y", "x")];
    expect(pathTo(loop, "x").map((v) => v.id)).toEqual(["y", "x"]);
  });

  it("knows a message's alternatives", () => {
    expect(siblings(tree, "a1").map((x) => x.id)).toEqual(["a1", "a2"]);
    expect(childrenOf(tree, null).map((x) => x.id)).toEqual(["q1"]);
  });

  it("moves between branches down to their newest leaf", () => {
    expect(deepestLeaf(tree, "a2")).toBe("a3");
    expect(switchBranch(tree, "a2", -1)).toBe("a1");
    expect(switchBranch(tree, "a1", 1)).toBe("a3");
    expect(switchBranch(tree, "a1", -1)).toBeNull();
  });

  it("titles a chat by its first words", () => {
    expect(titleFrom("  Name   three rivers ")).toBe("Name three rivers");
    expect(titleFrom("x".repeat(100))).toHaveLength(60);
    expect(titleFrom("")).toBe("New chat");
  });
});
