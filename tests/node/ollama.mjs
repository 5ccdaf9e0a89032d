// Ollama's JS client (npm `ollama`, pinned in package.json) against ferrite,
// run by tests/python/test_ollama.py:
//   node ollama.mjs URL KEY CHAT EMBEDDER VISION IMAGE_FILE PULL_NAME
// Prints what it saw as one JSON object; the Python test checks it.
import { readFileSync } from "node:fs";
import { Ollama } from "ollama";

const [url, key, chat, embedder, vision, imageFile, pullName] = process.argv.slice(2);
const client = new Ollama({ host: url, headers: { Authorization: `Bearer ${key}` } });
const question = "Name three rivers.";
const messages = [{ role: "user", content: question }];
const options = { temperature: 0, num_predict: 12 };
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

/** The status an awaited call failed with, or "ok". */
async function failure(call) {
  try {
    await call();
    return "ok";
  } catch (e) {
    return { status: e.status_code, error: e.error };
  }
}

const models = (await client.list()).models.map((m) => m.model);
const shown = await client.show({ model: chat });
const whole = await client.chat({ model: chat, messages, options, stream: false });
const running = (await client.ps()).models.map((m) => m.model);
let streamed = "";
let last;
for await (const part of await client.chat({ model: chat, messages, options, stream: true })) {
  streamed += part.message.content;
  last = part;
}
const generated = await client.generate({ model: chat, prompt: question, options });
const schema = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer" } },
  required: ["name", "age"],
};
const formatted = await client.chat({
  model: chat,
  format: schema,
  options: { temperature: 0, num_predict: 60 },
  messages: [{ role: "user", content: "Make up a person." }],
});
// ferrite's `tool_choice` extension: the 135M model calls no tool unasked.
const called = await client.chat({
  model: chat,
  tools: [weather],
  tool_choice: "required",
  options: { temperature: 0, num_predict: 60 },
  messages: [{ role: "user", content: "What is the weather in Paris?" }],
});
const image = readFileSync(imageFile).toString("base64");
const seenImage = await client.chat({
  model: vision,
  options,
  messages: [{ role: "user", content: "What is in this picture?", images: [image] }],
});
const embedded = await client.embed({ model: embedder, input: ["the sea"] });
const pulled = [];
for await (const p of await client.pull({ model: pullName, stream: true })) {
  pulled.push({ status: p.status, total: p.total, completed: p.completed });
}
const afterPull = (await client.list()).models.map((m) => m.model);
const deleted = (await client.delete({ model: pullName })).status;
const unknown = await failure(() => client.chat({ model: "no-such-model", messages }));
const unauthorized = await failure(() => new Ollama({ host: url }).list());
const unloaded = (await client.generate({ model: chat, prompt: "", keep_alive: 0 })).done_reason;
const afterUnload = (await client.ps()).models.map((m) => m.model);
console.log(JSON.stringify({
  models,
  capabilities: shown.capabilities,
  running,
  whole: whole.message.content,
  streamed,
  done_reason: last.done_reason,
  eval_count: last.eval_count,
  generated: generated.response,
  formatted: formatted.message.content,
  tool_calls: called.message.tool_calls ?? [],
  image_answer: seenImage.message.content,
  dimensions: embedded.embeddings[0].length,
  pulled,
  after_pull: afterPull,
  deleted,
  unknown,
  unauthorized,
  unloaded,
  after_unload: afterUnload,
}));
