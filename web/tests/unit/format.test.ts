import { describe, expect, it } from "vitest";
import { duration, size } from "../../src/lib/format";

describe("size", () => {
  it("uses binary units with one decimal past bytes", () => {
    expect(size(0)).toBe("0 B");
    expect(size(1023)).toBe("1023 B");
    expect(size(98362432)).toBe("93.8 MB");
    expect(size(5 * 1024 ** 3)).toBe("5.0 GB");
  });
});

describe("duration", () => {
  it("reads as seconds, minutes or hours", () => {
    expect(duration(0.4)).toBe("0 s");
    expect(duration(42)).toBe("42 s");
    expect(duration(185)).toBe("3 min 5 s");
    expect(duration(7440)).toBe("2 h 4 min");
    expect(duration(-3)).toBe("0 s");
  });
});
