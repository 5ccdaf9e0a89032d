// Ollama's JS client (npm `ollama`, pinned in package.json) against ferrite,
// run by tests/python/test_ollama.py: node ollama.mjs URL KEY CHAT EMBEDDER.
// Prints what it saw as one JSON object.
import { Ollama } from "ollama";

const [url, key, chat, embedder] = process.argv.slice(2);
const client = new Ollama({ host: url, headers: { Authorization: `Bearer ${key}` } });
const messages = [{ role: "user", content: "Name three rivers." }];
const options = { temperature: 0, num_predict: 12 };

const models = (await client.list()).models.map((m) => m.model);
const whole = await client.chat({ model: chat, messages, options, stream: false });
let streamed = "";
let last;
for await (const part of await client.chat({ model: chat, messages, options, stream: true })) {
  streamed += part.message.content;
  last = part;
}
const embedded = await client.embed({ model: embedder, input: ["the sea"] });
let unauthorized;
try {
  await new Ollama({ host: url }).list();
} catch (e) {
  unauthorized = e.status_code;
}
console.log(JSON.stringify({
  models,
  whole: whole.message.content,
  streamed,
  done_reason: last.done_reason,
  eval_count: last.eval_count,
  dimensions: embedded.embeddings[0].length,
  unauthorized,
}));
