/// <reference types="vite/client" />
// KaTeX and highlight.js, the bulk of the page's code, are fetched the first
// time a message has math or code: a chat of plain text never loads them.
import "highlight.js/styles/github-dark.css";

export interface Typesetters {
  katex: typeof import("katex").default;
  hljs: typeof import("highlight.js").default;
}

let loaded: Typesetters | null = null;
let loading: Promise<Typesetters> | null = null;

/** Whether `markdown` has fenced or indented code, or `$` math. */
export function needsTypesetting(markdown: string): boolean {
  return /```|~~~|\$|\n {4}\S/.test(markdown);
}

/** The typesetters, if loaded yet. */
export function typesetters(): Typesetters | null {
  return loaded;
}

/** Loads the typesetters once; resolves when they are ready. */
export function loadTypesetters(): Promise<Typesetters> {
  loading ??= Promise.all([
    import("katex"),
    import("highlight.js/lib/common"),
    import("katex/dist/katex.min.css"),
  ]).then(([katex, hljs]) => (loaded = { katex: katex.default, hljs: hljs.default }));
  return loading;
}
