import { defineConfig } from '@playwright/test';

// The deployment test (`make deploy-test`, tests/deploy/browser.rs) runs
// this against nginx in front of two keyward instances; it starts nothing
// itself and is not part of the main browser suite.
const baseURL = process.env.KEYWARD_DEPLOY_URL;
if (!baseURL) throw new Error('KEYWARD_DEPLOY_URL is set by tests/deploy/browser.rs');

export default defineConfig({
  testDir: './deploy',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  reporter: [['list']],
  outputDir: './test-results-deploy',
  use: {
    baseURL,
    // The run's own certificate authority is not in Chromium's store.
    ignoreHTTPSErrors: true,
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
});
