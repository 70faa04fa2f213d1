// Audits one page with Lighthouse's default (mobile) profile in Debian's
// Chromium and prints one line of JSON: the scores and timings the page-load
// benchmark reports. benches/pageload.rs starts keyward, signs in, and runs
// this once per page and round.
//
//   node audit.mjs URL            (LIGHTHOUSE_COOKIE: a session cookie header;
//                                  LIGHTHOUSE_REPORT_DIR: also keep each full
//                                  report there, to see what set a timing)

import { mkdirSync, writeFileSync } from 'node:fs';
import lighthouse from 'lighthouse';
import * as chromeLauncher from 'chrome-launcher';
import puppeteer from 'puppeteer-core';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}
const cookie = process.env.LIGHTHOUSE_COOKIE;

const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROME_PATH ?? '/usr/bin/chromium',
  // A fresh profile each run: nothing cached, as for a first visit.
  chromeFlags: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const browser = await puppeteer.connect({ browserURL: `http://127.0.0.1:${chrome.port}` });
try {
  const page = await browser.newPage();
  const result = await lighthouse(
    url,
    {
      output: 'json',
      logLevel: 'error',
      onlyCategories: ['performance', 'accessibility'],
      extraHeaders: cookie ? { Cookie: cookie } : undefined,
    },
    undefined,
    page,
  );
  const { lhr } = result;
  if (lhr.runtimeError) {
    throw new Error(`${lhr.runtimeError.code}: ${lhr.runtimeError.message}`);
  }
  const reportDir = process.env.LIGHTHOUSE_REPORT_DIR;
  if (reportDir) {
    mkdirSync(reportDir, { recursive: true });
    const name = new URL(finalUrlOf(lhr)).pathname.replaceAll('/', '_') || '_';
    writeFileSync(`${reportDir}/${name}-${Date.now()}.json`, JSON.stringify(lhr));
  }
  const audit = (id) => lhr.audits[id]?.numericValue ?? null;
  const requests = lhr.audits['network-requests']?.details?.items ?? [];
  const wasmBytes = requests
    .filter((r) => r.url.endsWith('.wasm'))
    .reduce((sum, r) => sum + (r.transferSize ?? 0), 0);
  // A page that redirected (to /login, say) was not the page asked for,
  // and a page that never hydrated only looks fast.
  const finalUrl = finalUrlOf(lhr);
  const hydrated = await page
    .waitForSelector('body[data-hydrated="true"]', { timeout: 30_000 })
    .then(() => true, () => false);
  console.log(
    JSON.stringify({
      url: finalUrl,
      hydrated,
      performance: Math.round(lhr.categories.performance.score * 100),
      accessibility: Math.round(lhr.categories.accessibility.score * 100),
      fcp_ms: audit('first-contentful-paint'),
      lcp_ms: audit('largest-contentful-paint'),
      tbt_ms: audit('total-blocking-time'),
      tti_ms: audit('interactive'),
      speed_index_ms: audit('speed-index'),
      cls: audit('cumulative-layout-shift'),
      bytes: audit('total-byte-weight'),
      wasm_bytes: wasmBytes,
      lcp_element: lhr.audits['largest-contentful-paint-element']?.details?.items?.[0]?.items?.[0]?.node?.snippet ?? null,
      failed_accessibility: Object.values(lhr.audits)
        .filter((a) => lhr.categories.accessibility.auditRefs.some((r) => r.id === a.id && r.weight > 0))
        .filter((a) => a.score !== null && a.score < 1)
        .map((a) => a.id),
    }),
  );
} finally {
  await browser.disconnect();
  await chrome.kill();
}

function finalUrlOf(lhr) {
  return lhr.finalDisplayedUrl ?? lhr.finalUrl;
}
