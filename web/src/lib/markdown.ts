// Messages as HTML: markdown (marked), code highlighted (highlight.js),
// math typeset (KaTeX: $...$ and $$...$$), and sanitized (DOMPurify)
// since models write what prompts ask of them.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import katex from "katex";
import { Marked, type TokenizerAndRendererExtension } from "marked";

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
    renderer: (token) => katex.renderToString(token.text, { displayMode: display, throwOnError: false }),
  };
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  extensions: [math(true), math(false)],
  renderer: {
    code({ text, lang }) {
      const language = lang && hljs.getLanguage(lang) ? lang : undefined;
      const html = language
        ? hljs.highlight(text, { language }).value
        : hljs.highlightAuto(text).value;
      return `<pre class="code"><button type="button" class="copy" data-copy>Copy</button><code class="hljs">${html}</code></pre>`;
    },
  },
});

export function render(markdown: string): string {
  const html = marked.parse(markdown, { async: false }) as string;
  return DOMPurify.sanitize(html);
}
