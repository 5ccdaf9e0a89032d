// End-to-end tests in headless Chromium (Debian's, FERRITE_TEST_CHROMIUM)
// against a real ferrite that tests/python/test_web.py starts: it passes
// the server's URL, a key and the models' ids.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "tests/e2e",
  timeout: 120_000,
  workers: 1,
  reporter: [["list"]],
  outputDir: process.env.FERRITE_UI_ARTIFACTS ?? "test-results",
  use: {
    baseURL: process.env.FERRITE_URL,
    launchOptions: { executablePath: process.env.FERRITE_TEST_CHROMIUM || undefined },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
  },
});
