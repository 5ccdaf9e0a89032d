// Messages as HTML: markdown (marked), code highlighted (highlight.js),
// math typeset (KaTeX: $...$ and $$...$$), and sanitized (DOMPurify)
// since models write what prompts ask of them. Until the typesetters are
// loaded (lib/typeset.ts), code is plain and math is its source.
import DOMPurify from "dompurify";
import { Marked, type TokenizerAndRendererExtension } from "marked";
import { typesetters } from "./typeset";

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function math(display: boolean): TokenizerAndRendererExtension {
  const open = display ? "$$" : "$";
  const rule = display ? /^\$\$([\s\S]+?)\$\$/ : /^\$([^$\n]+?)\$/;
  return {
    name: display ? "mathBlock" : "mathInline",
    level: display ? "block" : "inline",
    start: (src: string) => src.indexOf(open),
    tokenizer(src: string) {
      const match = rule.exec(src);
      return match ? { type: display ? "mathBlock" : "mathInline", raw: match[0], text: match[1] } : undefined;
    },
    renderer(token) {
      const katex = typesetters()?.katex;
      return katex
        ? katex.renderToString(token.text, { displayMode: display, throwOnError: false })
        : escape(token.raw);
    },
  };
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  extensions: [math(true), math(false)],
  renderer: {
    code({ text, lang }) {
      const hljs = typesetters()?.hljs;
      let html = escape(text);
      if (hljs) {
        const language = lang && hljs.getLanguage(lang) ? lang : undefined;
        html = language ? hljs.highlight(text, { language }).value : hljs.highlightAuto(text).value;
      }
      return `<pre class="code"><button type="button" class="copy" data-copy>Copy</button><code class="hljs">${html}</code></pre>`;
    },
  },
});

export function render(markdown: string): string {
  const html = marked.parse(markdown, { async: false }) as string;
  return DOMPurify.sanitize(html);
}
