import { describe, expect, it } from "vitest";
import { figures, parse, polyline, sum } from "../../src/lib/metrics";

const BEFORE = `# HELP ferrite:generation_tokens_total Tokens generated.
# TYPE ferrite:generation_tokens_total counter
ferrite:generation_tokens_total{endpoint="chat"} 100
ferrite:generation_tokens_total{endpoint="completions"} 20
ferrite:requests_total{endpoint="chat",outcome="ok"} 4
ferrite:cache_requests_total{result="hit",source="exact"} 1
ferrite:cache_requests_total{result="miss",source="none"} 3
ferrite:requests_running 0
process_resident_memory_bytes 1.5e8
`;

const NOW = `ferrite:generation_tokens_total{endpoint="chat"} 300
ferrite:generation_tokens_total{endpoint="completions"} 20
ferrite:requests_total{endpoint="chat",outcome="ok"} 6
ferrite:requests_total{endpoint="chat",outcome="error"} 2
ferrite:cache_requests_total{result="hit",source="exact"} 4
ferrite:cache_requests_total{result="hit",source="coalesced"} 1
ferrite:cache_requests_total{result="miss",source="none"} 3
ferrite:requests_running 2
ferrite:requests_waiting 1
ferrite:prefix_cache_entries 7
ferrite:models_loaded 2
process_resident_memory_bytes 2.5e8
`;

describe("parse", () => {
  it("reads names, labels and values, and skips comments and junk", () => {
    const samples = parse(`# TYPE x counter\nx{a="1",b="q\\"uote"} 3\nnot a sample\ny 2.5e3\nz NaN\n`);
    expect(samples).toEqual([
      { name: "x", labels: { a: "1", b: 'q"uote' }, value: 3 },
      { name: "y", labels: {}, value: 2500 },
    ]);
  });

  it("sums the samples whose labels match", () => {
    const samples = parse(NOW);
    expect(sum(samples, "ferrite:requests_total")).toBe(8);
    expect(sum(samples, "ferrite:requests_total", { outcome: "ok" })).toBe(6);
    expect(sum(samples, "absent")).toBe(0);
  });
});

describe("figures", () => {
  it("turns two scrapes into rates and levels", () => {
    const f = figures(parse(BEFORE), parse(NOW), 2);
    expect(f.tokensPerSecond).toBe(100);
    expect(f.requestsPerSecond).toBe(2);
    expect(f.running).toBe(2);
    expect(f.waiting).toBe(1);
    expect(f.memoryBytes).toBe(2.5e8);
    expect(f.cacheHitRatio).toBe(1);
    expect(f.prefixCacheEntries).toBe(7);
    expect(f.modelsLoaded).toBe(2);
  });

  it("has no hit ratio without lookups", () => {
    expect(figures(parse(NOW), parse(NOW), 1).cacheHitRatio).toBeNull();
  });

  it("counts a restarted server's counters from zero", () => {
    const f = figures(parse(NOW), parse(BEFORE), 1);
    expect(f.tokensPerSecond).toBe(120);
    expect(f.requestsPerSecond).toBe(4);
  });
});

describe("polyline", () => {
  it("spreads the values across the width, the largest at the top", () => {
    expect(polyline([0, 5, 10], 100, 50)).toBe("0.0,50.0 50.0,25.0 100.0,0.0");
    expect(polyline([0.5], 100, 50)).toBe("0.0,25.0");
    expect(polyline([], 100, 50)).toBe("");
  });
});
