// LM Studio's JS SDK downloading a model from ferrite's Hub (a local one in
// the tests): search, the download options, then the download with progress.
//   node tests/node/downloads.mjs ws://127.0.0.1:PORT apiToken
// Prints one JSON line: the model key and the progress updates seen.
import assert from "node:assert/strict";
import { LMStudioClient } from "@lmstudio/sdk";

const [baseUrl, apiToken] = process.argv.slice(2);
const client = new LMStudioClient({ baseUrl, apiToken, verboseErrorMessages: false });

const results = await client.repository.searchModels({ searchTerm: "js-gguf", limit: 5 });
assert.equal(results.length, 1);
assert.equal(results[0].name, "ferrite-test/js-GGUF");
const options = await results[0].getDownloadOptions();
assert.equal(options.length, 1);
assert.equal(options[0].quantization, "Q4_0");
assert.ok(options[0].isRecommended());
assert.ok(options[0].sizeBytes > 0);
let progress = 0;
let finalizing = false;
const key = await options[0].download({
  onProgress: () => { progress += 1; },
  onStartFinalizing: () => { finalizing = true; },
});
assert.ok(key.length > 0, "a model key");
assert.ok(finalizing, "finalizing was announced");
console.log(JSON.stringify({ key, progress }));
