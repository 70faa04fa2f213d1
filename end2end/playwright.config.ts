import { defineConfig } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';

// One fresh SQLite database per run. Set here, in the main process, so the
// workers (which re-read this file) inherit the same value.
process.env.KEYWARD_E2E_DB ??= path.join(os.tmpdir(), `keyward-e2e-${process.pid}-${Date.now()}.db`);
const port = Number(process.env.KEYWARD_E2E_PORT ?? 3107);
const mockPort = port + 1;
const baseURL = `http://127.0.0.1:${port}`;

/** Keys the mock upstream accepts; tests paste these into Settings. */
export const MOCK_KEYS = {
  platform: 'sk-ant-api03-mock-platform-key-0000-PLAT',
  user: 'sk-ant-api03-mock-user-key-0001-WXYZ',
};

/** The admin account created before the server starts. */
export const ADMIN = { email: 'admin@e2e.example.com', password: 'correct horse battery staple' };

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `./target/debug/mock_llm --addr 127.0.0.1:${mockPort} --keys ${MOCK_KEYS.platform},${MOCK_KEYS.user}`,
      cwd: '..',
      url: `http://127.0.0.1:${mockPort}/_mock/requests`,
      reuseExistingServer: false,
      timeout: 60_000,
    },
    {
    // A known admin account first (on an empty database the first account
    // is an admin anyway; this makes it this one, whatever test runs first).
    command: `sh -c 'printf "%s\\n" "${ADMIN.password}" | ./target/debug/keyward create-user --email ${ADMIN.email} --admin --password-stdin >/dev/null && exec ./target/debug/keyward serve'`,
    cwd: '..',
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      DATABASE_URL: `sqlite:${process.env.KEYWARD_E2E_DB}?mode=rwc`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      // The debug build's assets, where `make test` and `make e2e` put them.
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? 'target/site-debug',
      KEYWARD_MASTER_KEY: 'a2V5d2FyZC1lMmUtbWFzdGVyLWtleS0zMi1ieXRlcyE=',
      ANTHROPIC_BASE_URL: `http://127.0.0.1:${mockPort}`,
      ANTHROPIC_API_KEY: MOCK_KEYS.platform,
      // Small enough for a test to reach; each test signs up its own user.
      KEYWARD_FREE_REQUESTS_PER_DAY: '4',
      RUST_LOG: 'warn',
    },
    },
  ],
});
