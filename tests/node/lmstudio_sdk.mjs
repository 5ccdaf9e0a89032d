// LM Studio's JS SDK (@lmstudio/sdk) against a running ferrite:
//   node tests/node/lmstudio_sdk.mjs ws://127.0.0.1:PORT [apiToken]
// The calls `lms ls`, `lms ps`, `lms load` and `lms unload` make are among
// them. Exits non-zero on the first failed assertion.
import assert from "node:assert/strict";
import { LMStudioClient } from "@lmstudio/sdk";

const [baseUrl, apiToken] = process.argv.slice(2);
const client = new LMStudioClient({ baseUrl, apiToken, verboseErrorMessages: false });

// `lms ls`
const downloaded = await client.system.listDownloadedModels();
const llmKey = downloaded.find((m) => m.type === "llm")?.modelKey;
assert.ok(llmKey, "an LLM is listed");
assert.ok(downloaded.some((m) => m.type === "embedding"), "an embedding model is listed");

// `lms ps`
const loaded = await client.llm.listLoaded();
const loadedEmbeddings = await client.embedding.listLoaded();
assert.ok(loaded.some((m) => m.identifier === llmKey), "the chat model is loaded");
assert.equal(loadedEmbeddings.length, 1);

const model = await client.llm.model(llmKey);
const answer = await model.respond("What is 2+2?", { maxTokens: 16, temperature: 0 });
assert.ok(answer.content.length > 0);
assert.equal(typeof answer.stats.predictedTokensCount, "number");
assert.ok(answer.stats.predictedTokensCount > 0);

const pieces = [];
const prediction = model.respond("Say hi", { maxTokens: 8, temperature: 0 });
for await (const fragment of prediction) pieces.push(fragment.content);
const streamed = await prediction.result();
assert.equal(pieces.join(""), streamed.content);

const tokens = await model.tokenize("hello world");
assert.ok(tokens.length > 0);
assert.equal(await model.countTokens("hello world"), tokens.length);

const embedder = await client.embedding.model();
const { embedding } = await embedder.embed("hello");
assert.equal(embedding.length, 384);

await assert.rejects(client.llm.model("no-such-model"), /no-such-model|No loaded model/);

// `lms unload`, then `lms load` (with its progress bar)
await client.llm.unload(llmKey);
assert.equal((await client.llm.listLoaded()).length, 0);
const progress = [];
const reloaded = await client.llm.load(llmKey, { verbose: false, onProgress: (p) => progress.push(p) });
assert.equal(reloaded.identifier, llmKey);
assert.ok(progress.length > 0, "load progress was reported");
assert.ok((await client.llm.listLoaded()).some((m) => m.identifier === llmKey));

console.log("ok");
process.exit(0);
