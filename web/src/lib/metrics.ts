// The figures of the status view, read from ferrite's own `/metrics`
// (Prometheus' text format): rates come from two scrapes' counters.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of an exposition; comments and malformed lines are skipped. */
export function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = LINE.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? "").matchAll(LABEL)) {
      labels[key] = value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const value = Number(m[3]);
    if (!Number.isNaN(value)) samples.push({ name: m[1], labels, value });
  }
  return samples;
}

/** The sum of `name`'s samples whose labels include `where`. */
export function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

/** One point of each plot. */
export interface Figures {
  tokensPerSecond: number;
  requestsPerSecond: number;
  running: number;
  waiting: number;
  memoryBytes: number;
  /** Response-cache hits over lookups since the last scrape; null with none. */
  cacheHitRatio: number | null;
  prefixCacheEntries: number;
  modelsLoaded: number;
}

/** The figures between two scrapes `seconds` apart. A counter that went
 * down (the server restarted) counts from zero. */
export function figures(before: Sample[], now: Sample[], seconds: number): Figures {
  const rate = (name: string, where: Record<string, string> = {}) => {
    const was = sum(before, name, where);
    const is = sum(now, name, where);
    const grew = is >= was ? is - was : is;
    return seconds > 0 ? grew / seconds : 0;
  };
  const hits = rate("ferrite:cache_requests_total", { result: "hit" });
  const misses = rate("ferrite:cache_requests_total", { result: "miss" });
  return {
    tokensPerSecond: rate("ferrite:generation_tokens_total"),
    requestsPerSecond: rate("ferrite:requests_total"),
    running: sum(now, "ferrite:requests_running"),
    waiting: sum(now, "ferrite:requests_waiting"),
    memoryBytes: sum(now, "process_resident_memory_bytes"),
    cacheHitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
    prefixCacheEntries: sum(now, "ferrite:prefix_cache_entries"),
    modelsLoaded: sum(now, "ferrite:models_loaded"),
  };
}

/** An SVG polyline's points for `values` in a `width` by `height` box, the
 * largest value at the top (or `floor` when all are below it). */
export function polyline(values: number[], width: number, height: number, floor = 1): string {
  if (!values.length) return "";
  const top = Math.max(floor, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - (v / top) * height).toFixed(1)}`)
    .join(" ");
}
