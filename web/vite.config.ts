import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig, type Plugin } from "vite";

/** KaTeX's fonts in woff2 only (every browser the app runs in reads it),
 * and a `.gz` copy beside each text file of the bundle, which the server
 * sends to browsers that take gzip (it embeds both). */
function slimAndGzip(): Plugin {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  let outDir = "dist";
  return {
    name: "ferrite-slim-and-gzip",
    apply: "build",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      for (const path of walk(outDir)) {
        if (/\.(woff|ttf)$/.test(path)) rmSync(path);
        if (path.endsWith(".css")) {
          const css = readFileSync(path, "utf8");
          writeFileSync(path, css.replace(/,url\([^)]*\.(woff|ttf)\)\s*format\("(woff|truetype)"\)/g, ""));
        }
      }
      for (const path of walk(outDir)) {
        if (/\.(html|js|css|svg|json|ttf)$/.test(path)) {
          writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
        }
      }
    },
  };
}

export default defineConfig({
  plugins: [svelte(), slimAndGzip()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    // The server serves /assets/{file}: one level, no subfolders.
    rollupOptions: { output: { assetFileNames: "assets/[name]-[hash][extname]" } },
  },
  test: { include: ["tests/unit/**/*.test.ts"], environment: "node" },
});
