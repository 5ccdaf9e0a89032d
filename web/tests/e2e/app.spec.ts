// The web app against a real ferrite and model. Screenshots of each view
// land in the artifacts folder (FERRITE_UI_ARTIFACTS) to be looked at.
import { readFileSync } from "node:fs";
import { type Browser, type Page, expect, test } from "@playwright/test";

const KEY = process.env.FERRITE_KEY ?? "";
const CHAT = process.env.FERRITE_CHAT ?? "";
const VISION = process.env.FERRITE_VISION ?? "";
const HUB_REPO = process.env.FERRITE_HUB_REPO ?? "";
const SLOW_REPO = process.env.FERRITE_SLOW_REPO ?? "";
const BROKE_KEY = process.env.FERRITE_BROKE_KEY ?? "";
const SHOTS = `${process.env.FERRITE_UI_ARTIFACTS ?? "test-results"}/screens`;
// A picture the Python side made (tests/python/test_images.py's `png`).
const PNG = readFileSync(process.env.FERRITE_TEST_IMAGE ?? "");

// Short, greedy answers keep the tests quick (the 135M model loops).
const QUICK = JSON.stringify({ temperature: 0, max_tokens: 48 });

/** A page that already holds the key, as after a first visit, with the
 * chat model picked. */
async function signedIn(browser: Browser, key = KEY): Promise<Page> {
  const context = await browser.newContext();
  await context.addInitScript(
    ([key, preset, model]) => {
      if (!sessionStorage.getItem("seeded")) {
        localStorage.setItem("ferrite.key", key);
        localStorage.setItem("ferrite.preset", preset);
        localStorage.setItem("ferrite.model", model);
        sessionStorage.setItem("seeded", "1");
      }
    },
    [key, QUICK, CHAT],
  );
  const page = await context.newPage();
  await page.goto("/");
  await expect(page.getByLabel("Model")).toContainText(CHAT);
  return page;
}

async function ask(page: Page, text: string) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}

const answers = (page: Page) => page.locator('[data-role="assistant"]');

test("a first visit asks for the key, refuses a wrong one, then chats", async ({ page }) => {
  await page.addInitScript((preset) => localStorage.setItem("ferrite.preset", preset), QUICK);
  await page.goto("/");
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/key-dialog.png` });
  await page.getByRole("textbox", { name: "API key" }).fill("sk-wrong");
  await page.getByRole("button", { name: "Use this key" }).click();
  await expect(dialog.getByRole("alert")).toContainText("refused");
  await page.getByRole("textbox", { name: "API key" }).fill(KEY);
  await page.getByRole("button", { name: "Use this key" }).click();
  await expect(dialog).toBeHidden();
  await page.getByLabel("Model").selectOption(CHAT);

  await ask(page, "Name three rivers.");
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  const reply = answers(page).last();
  await expect(reply.getByTestId("content")).not.toBeEmpty();
  await expect(reply.getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  await expect(reply.getByTestId("stats")).toContainText("tok/s");
  await expect(page.getByTestId("conversations")).toContainText("Name three rivers.");
  await page.screenshot({ path: `${SHOTS}/chat.png` });
});

test("regenerate makes a branch that survives a reload and shows in another browser", async ({ browser }) => {
  const page = await signedIn(browser);
  await ask(page, "Say hello in French.");
  const reply = answers(page).last();
  await expect(reply.getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  await reply.getByRole("button", { name: "Regenerate" }).click();
  await expect(reply.getByTestId("branch")).toHaveText("2/2");
  await expect(reply.getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  await reply.getByRole("button", { name: "Previous version" }).click();
  await expect(reply.getByTestId("branch")).toHaveText("1/2");
  await page.screenshot({ path: `${SHOTS}/branches.png` });

  // Saved on the server: a reload, and a second browser, find it.
  await page.reload();
  await page.getByRole("button", { name: "Say hello in French.", exact: true }).click();
  await expect(answers(page).last().getByTestId("branch")).toHaveText("1/2");
  const other = await signedIn(browser);
  await expect(other.getByTestId("conversations")).toContainText("Say hello in French.");
  await other.getByLabel("Search conversations").fill("French");
  await expect(other.getByTestId("conversations").getByRole("listitem")).toHaveCount(1);
  await other.context().close();
});

test("continue goes on from the answer so far, as a new version of it", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByText("Settings").click();
  await page.getByLabel("Limit response length (tokens)").fill("6");
  await ask(page, "Tell me about the sea.");
  const reply = answers(page).last();
  await expect(reply.getByTestId("stats")).toContainText("stop: length", { timeout: 60_000 });
  const before = ((await reply.getByTestId("content").textContent()) ?? "").trim();
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await reply.getByRole("button", { name: "Continue" }).click();
  const body = (await sent).postDataJSON();
  expect(body.continue_final_message).toBe(true);
  expect(body.messages.at(-1).role).toBe("assistant");
  expect(body.messages.at(-1).content).not.toBe("");
  await expect(reply.getByTestId("branch")).toHaveText("2/2");
  await expect(reply.getByTestId("stats")).toContainText("6 tokens", { timeout: 60_000 });
  const after = ((await reply.getByTestId("content").textContent()) ?? "").trim();
  expect(after.startsWith(before.slice(0, 12))).toBe(true);
  expect(after.length).toBeGreaterThan(before.length);
});

test("a preset changes the request, and LM Studio's presets import", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByText("Settings").click();
  await page.getByLabel("Temperature").fill("0");
  await page.getByLabel("Limit response length (tokens)").fill("5");
  await page.getByLabel("When the context is full").selectOption("truncate_middle");
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await ask(page, "Count to twenty.");
  const body = (await sent).postDataJSON();
  expect(body).toMatchObject({ temperature: 0, max_tokens: 5, context_overflow: "truncate_middle" });
  const stats = answers(page).last().getByTestId("stats");
  await expect(stats).toContainText("5 tokens", { timeout: 60_000 });
  await expect(stats).toContainText("stop: length");
  await page.screenshot({ path: `${SHOTS}/settings.png` });
  const file = {
    name: "Precise",
    operation: {
      fields: [
        { key: "llm.prediction.temperature", value: 0.2 },
        { key: "llm.prediction.maxPredictedTokens", value: { checked: true, value: 7 } },
        { key: "llm.prediction.systemPrompt", value: "Answer in one word." },
      ],
    },
  };
  await page.locator('.settings input[type="file"]').setInputFiles({
    name: "precise.preset.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(file)),
  });
  await expect(page.getByLabel("Temperature")).toHaveValue("0.2");
  await expect(page.getByLabel("Limit response length (tokens)")).toHaveValue("7");
  await expect(page.getByLabel("System prompt", { exact: true })).toHaveValue("Answer in one word.");
});

test("stop ends an answer mid-way and the next one still comes", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByText("Settings").click();
  await page.getByLabel("Limit response length (tokens)").fill("3000");
  await ask(page, "Write a very long story about a dragon who learns to bake bread.");
  const reply = answers(page).last();
  await expect(reply.getByTestId("content")).not.toBeEmpty();
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(reply.getByTestId("stats")).toContainText("stop: stopped");
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
  await page.getByLabel("Limit response length (tokens)").fill("16");
  await ask(page, "Thanks.");
  await expect(answers(page).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
});

test("an attached image goes to the vision model", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByLabel("Model").selectOption(VISION);
  await page.locator('input[type="file"][multiple]').setInputFiles({ name: "dots.png", mimeType: "image/png", buffer: PNG });
  await expect(page.getByTestId("attached").locator("img")).toHaveCount(1);
  await page.getByLabel("Message", { exact: true }).fill("What is in this picture?");
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await page.getByRole("button", { name: "Send" }).click();
  const body = (await sent).postDataJSON();
  expect(body.model).toBe(VISION);
  expect(body.max_tokens).toBe(48);
  const parts = body.messages[body.messages.length - 1].content;
  expect(parts[1].image_url.url).toMatch(/^data:image\/png;base64,/);
  const reply = answers(page).last();
  await expect(reply.getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  await expect(reply.getByTestId("content")).not.toBeEmpty();
  await expect(page.locator('[data-role="user"] img.attachment')).toHaveCount(1);
  await page.screenshot({ path: `${SHOTS}/vision.png` });
});

test("a model loads with a context length, showing its progress, and unloads", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByRole("button", { name: "Models", exact: true }).click();
  const row = page.locator(`[data-testid="model-row"][data-model="${VISION}"]`);
  await expect(row).toBeVisible();
  if (await row.getByRole("button", { name: "Unload" }).isVisible()) {
    await row.getByRole("button", { name: "Unload" }).click();
  }
  await expect(row.getByTestId("state")).toContainText("not loaded");
  await row.getByLabel(`Context length for ${VISION}`).fill("1024");
  await row.getByLabel(`Idle seconds before ${VISION} unloads`).fill("600");
  await row.getByRole("button", { name: "Load" }).click();
  await expect(row.getByRole("progressbar")).toBeVisible();
  await expect(row.getByTestId("state")).toContainText("loaded", { timeout: 60_000 });
  await expect(row.getByTestId("state")).toContainText("unloads after 600 s idle");
  await expect(row.getByTestId("context")).toHaveText("1024");
  await page.screenshot({ path: `${SHOTS}/models.png` });
  await row.getByRole("button", { name: "Unload" }).click();
  await expect(row.getByTestId("state")).toContainText("not loaded");
  // Back in the chat, the picker knows.
  await page.getByRole("button", { name: "Chat", exact: true }).click();
  await expect(page.getByLabel("Model")).not.toContainText(`${VISION} (loaded)`);
});

test("code and math are typeset, their code fetched only once a message needs it", async ({ browser }) => {
  const page = await signedIn(browser);
  const fetched: string[] = [];
  page.on("request", (r) => fetched.push(r.url()));
  await ask(page, "Say one word.");
  await expect(answers(page).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  const typesetters = () => fetched.filter((u) => /\/assets\/(katex|common)-.*\.js$/.test(u));
  expect(typesetters()).toEqual([]);
  // A conversation from elsewhere (another device, an import) with both.
  const made = await page.evaluate(async (key) => {
    const r = await fetch("/v1/app/conversations", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        title: "Typeset",
        messages: [
          { id: "q", parent: null, role: "user", content: "Show code and math." },
          { id: "a", parent: "q", role: "assistant", content: "```python\nprint(1 < 2)\n```\n\nArea: $\\pi r^2$" },
        ],
        current: "a",
      }),
    });
    return r.ok;
  }, KEY);
  expect(made).toBe(true);
  await page.reload();
  await page.getByRole("button", { name: "Typeset", exact: true }).click();
  const reply = answers(page).last().getByTestId("content");
  await expect(reply.locator("code.hljs .hljs-built_in")).toHaveText("print");
  await expect(reply.locator(".katex")).toHaveCount(1);
  expect(typesetters().length).toBe(2);
  await reply.getByRole("button", { name: "Copy" }).click();
  await expect(reply.getByRole("button", { name: "Copied" })).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/typeset.png` });
});

test("errors are shown in words", async ({ browser }) => {
  const page = await signedIn(browser);
  await ask(page, "Remember the number seven.");
  await expect(answers(page).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  // Deleted elsewhere, then opened here.
  const other = await signedIn(browser);
  const list = other.getByTestId("conversations");
  page.on("dialog", (d) => d.accept());
  other.on("dialog", (d) => d.accept());
  await other.getByRole("button", { name: "Delete Remember the number seven." }).click();
  await expect(list).not.toContainText("Remember the number seven.");
  await page.getByRole("button", { name: "Remember the number seven.", exact: true }).click();
  await expect(page.getByTestId("error")).toContainText("No conversation with id");
  await page.screenshot({ path: `${SHOTS}/error.png` });
  await other.context().close();

  // A model that fails to load.
  await page.getByRole("button", { name: "Dismiss" }).click();
  await page.getByRole("button", { name: "Models", exact: true }).click();
  await page.locator('[data-testid="model-row"][data-model="broken"]').getByRole("button", { name: "Load" }).click();
  // Loading is the model's work: as long as any load may take here.
  await expect(page.getByTestId("error")).toContainText("The model `broken` failed to load", { timeout: 60_000 });
  await page.getByRole("button", { name: "Dismiss" }).click();
  await page.getByRole("button", { name: "Chat", exact: true }).click();

  // The server gone.
  await page.getByRole("button", { name: "New chat" }).click();
  await page.route("**/v1/**", (route) => route.abort("connectionrefused"));
  await ask(page, "Are you there?");
  await expect(page.getByTestId("error")).toContainText("The server cannot be reached");
  await page.unroute("**/v1/**");

  // A budget spent: one request a minute for this key.
  const broke = await signedIn(browser, BROKE_KEY);
  await ask(broke, "First.");
  await expect(answers(broke).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  await ask(broke, "Second.");
  await expect(broke.getByTestId("error")).toContainText("Rate limit reached");
  await broke.context().close();
});

test("tools from the settings are offered, and the model's call is shown and kept", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByText("Settings").click();
  const weather = {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather in a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  };
  await page.getByLabel("Tools (OpenAI's JSON definitions)").fill(JSON.stringify(weather));
  await page.getByLabel("Tools (OpenAI's JSON definitions)").blur();
  await page.getByLabel("Tool use").selectOption("required");
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await ask(page, "What is the weather in Paris?");
  const body = (await sent).postDataJSON();
  expect(body.tools).toEqual([weather]);
  expect(body.tool_choice).toBe("required");
  const reply = answers(page).last();
  await expect(reply.getByTestId("stats")).toContainText("stop: tool_calls", { timeout: 60_000 });
  // The call comes whole at the end: its speed counts from the request.
  const speed = Number(/([\d.]+) tok\/s/.exec((await reply.getByTestId("stats").textContent()) ?? "")?.[1]);
  expect(speed).toBeGreaterThan(0);
  expect(speed).toBeLessThan(1000);
  const call = reply.getByTestId("tool-call");
  await expect(call).toContainText("get_weather");
  await expect(call.locator("pre")).toContainText('"city"');
  await page.getByText("Settings").click();
  await page.screenshot({ path: `${SHOTS}/tool-call.png` });
  // Kept with the conversation, and sent back as the assistant's call.
  await page.reload();
  await page.getByRole("button", { name: "What is the weather in Paris?", exact: true }).click();
  await expect(answers(page).last().getByTestId("tool-call")).toContainText("get_weather");
  await page.getByText("Settings").click();
  await page.getByLabel("Tool use").selectOption("none");
  const next = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
  await ask(page, "Thanks.");
  const history = (await next).postDataJSON().messages;
  expect(history.at(-2).tool_calls[0].function.name).toBe("get_weather");
  await expect(answers(page).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
});

test("keyboard alone reaches everything, and every field has a label", async ({ browser }) => {
  const page = await signedIn(browser);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute("aria-label"))
      .map((el) => el.outerHTML),
  );
  expect(unlabelled).toEqual([]);
  // Tab from the top: New chat, search, then on to the message box.
  await page.keyboard.press("Tab");
  await expect(page.getByRole("button", { name: "New chat" })).toBeFocused();
  await page.keyboard.press("Tab");
  await expect(page.getByLabel("Search conversations")).toBeFocused();
  const prompt = page.getByLabel("Message", { exact: true });
  for (let i = 0; i < 60 && !(await prompt.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  await expect(prompt).toBeFocused();
  await page.keyboard.type("Hi there.");
  await page.keyboard.press("Enter");
  await expect(answers(page).last().getByTestId("stats")).toContainText("tokens", { timeout: 60_000 });
  // Dark, for the screenshot.
  await page.getByRole("button", { name: "Switch between light and dark" }).click();
  await page.screenshot({ path: `${SHOTS}/dark.png` });
});

test("the server view plots live figures from its metrics", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByRole("button", { name: "Server", exact: true }).click();
  const plot = (label: string) => page.locator(`[data-testid="plot"][data-label="${label}"]`);
  await expect(plot("Memory").getByTestId("plot-value")).toHaveText(/^\d+\.\d [MG]B$/);
  // Traffic from a client, as any other.
  await page.evaluate(
    async ([key, model]) => {
      const r = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ model, max_tokens: 16, messages: [{ role: "user", content: "Hi." }] }),
      });
      if (!r.ok) throw new Error(await r.text());
    },
    [KEY, CHAT],
  );
  const nonzero = /^(?!0$)\d/;
  await expect(plot("Tokens generated")).toHaveAttribute("data-peak", nonzero);
  await expect(plot("Requests")).toHaveAttribute("data-peak", nonzero);
  await expect(page.getByTestId("loaded").first()).toContainText(CHAT);
  await page.screenshot({ path: `${SHOTS}/status.png` });
});

test("a download from the Hub shows its progress, cancels, and its model appears", async ({ browser }) => {
  const page = await signedIn(browser);
  await page.getByRole("button", { name: "Downloads", exact: true }).click();
  const search = async (words: string) => {
    await page.getByLabel("Search the Hugging Face Hub").fill(words);
    await page.getByRole("button", { name: "Search", exact: true }).click();
  };
  const job = (repo: string) => page.locator(`[data-testid="job"][data-model="${repo}"]`);

  // A slow one, cancelled mid-way.
  await search("slow");
  const slow = page.locator(`[data-testid="hit"][data-repo="${SLOW_REPO}"]`);
  await slow.getByRole("button", { name: SLOW_REPO }).click();
  await slow.getByRole("button", { name: `Download ${SLOW_REPO} Q4_0` }).click();
  await expect(job(SLOW_REPO).getByRole("progressbar")).toBeVisible();
  await expect(job(SLOW_REPO).getByTestId("job-progress")).toContainText(/of 24\.0 MB, .*\/s, .* left/);
  await page.screenshot({ path: `${SHOTS}/downloads.png` });
  await job(SLOW_REPO).getByRole("button", { name: "Cancel" }).click();
  await expect(job(SLOW_REPO)).toHaveAttribute("data-status", "failed");
  await expect(job(SLOW_REPO)).toContainText("cancelled");

  // A real model, picked by quantization, then listed and chosen.
  await search("SmolLM2");
  const hit = page.locator(`[data-testid="hit"][data-repo="${HUB_REPO}"]`);
  await hit.getByRole("button", { name: HUB_REPO }).click();
  const option = hit.locator('[data-testid="option"][data-quantization="Q4_1"]');
  await expect(option).toContainText("93.8 MB");
  await option.getByRole("button", { name: /^Download/ }).click();
  await expect(job(HUB_REPO)).toHaveAttribute("data-status", "completed", { timeout: 60_000 });
  const key = /listed as (\S+)/.exec((await job(HUB_REPO).textContent()) ?? "")?.[1] ?? "";
  expect(key).not.toBe("");
  await expect(page.getByLabel("Model").locator(`option[value="${key}"]`)).toHaveCount(1);
  await page.getByRole("button", { name: "Models", exact: true }).click();
  await expect(page.locator(`[data-testid="model-row"][data-model="${key}"]`)).toBeVisible();
});
