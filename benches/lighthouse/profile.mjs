// Where a page's main-thread time goes while it loads and hydrates: a
// developer's tool for the page-load benchmark's TBT (not run by tests).
// It loads the page in Debian's Chromium with the CPU slowed 4× (as
// Lighthouse's mobile profile assumes), records the long tasks the page
// saw and a CPU profile, and prints the tasks and the functions that took
// the most time. Wasm functions have names only in a build made with
// `-g` among `wasm-opt-features` (Cargo.toml, [package.metadata.leptos]).
//
//   node profile.mjs URL   (PROFILE_COOKIE: a session cookie header;
//                           PROFILE_RUNS: loads to sum over, default 5)

import puppeteer from 'puppeteer-core';

const url = process.argv[2];
if (!url) {
  console.error('usage: node profile.mjs URL');
  process.exit(2);
}
const runs = Number(process.env.PROFILE_RUNS ?? 5);
const cookie = process.env.PROFILE_COOKIE;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', ...(process.env.PROFILE_CHROME_FLAGS ?? '').split(' ').filter(Boolean)],
});
const selfTime = new Map();
const totalTime = new Map();
const blocking = [];
try {
  for (let run = 0; run < runs; run++) {
    // A fresh context each load: nothing cached, as for a first visit.
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    if (cookie) await page.setExtraHTTPHeaders({ Cookie: cookie });
    await page.evaluateOnNewDocument(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
      }).observe({ type: 'longtask', buffered: true });
    });
    const cdp = await page.createCDPSession();
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
    await cdp.send('Profiler.start');
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60_000 });
    // Let the tasks queued by hydration (lazy chunks, effects) run out.
    await page.waitForNetworkIdle({ idleTime: 500 });
    const { profile } = await cdp.send('Profiler.stop');
    const tasks = await page.evaluate(() => window.__longTasks);
    const tbt = tasks.reduce((sum, [, d]) => sum + Math.max(0, d - 50), 0);
    blocking.push(tbt);
    console.log(
      `run ${run + 1}: blocking ${tbt.toFixed(0)} ms in ${tasks.length} long tasks: ` +
        tasks.map(([s, d]) => `${d.toFixed(0)} ms at ${s.toFixed(0)}`).join(', '),
    );
    addProfile(profile);
    if (process.env.PROFILE_TASKS) printTasks(profile);
    await context.close();
  }
} finally {
  await browser.close();
}

blocking.sort((a, b) => a - b);
console.log(`blocking time (4× CPU), median of ${runs}: ${blocking[blocking.length >> 1].toFixed(0)} ms`);
print('self time', selfTime);
print('inclusive time', totalTime);

function addProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const micros = new Map();
  profile.samples.forEach((id, i) => {
    micros.set(id, (micros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  for (const [id, us] of micros) {
    const node = byId.get(id);
    const name = nameOf(node);
    if (name === '(idle)' || name === '(program)') continue;
    selfTime.set(name, (selfTime.get(name) ?? 0) + us / runs);
    // Each function once per stack, so recursion is not counted twice.
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const frame = nameOf(byId.get(at));
      if (seen.has(frame)) continue;
      seen.add(frame);
      totalTime.set(frame, (totalTime.get(frame) ?? 0) + us / runs);
    }
  }
}

function nameOf(node) {
  const { functionName, url: file } = node.callFrame;
  const where = file ? file.split('/').pop().split('?')[0] : '';
  return `${functionName || '(anonymous)'}${where ? ` [${where}]` : ''}`;
}

function print(title, times) {
  console.log(`\n${title}, ms per load (4× CPU):`);
  [...times.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(process.env.PROFILE_TOP ?? 40))
    .forEach(([name, us]) => console.log(`${(us / 1000).toFixed(1).padStart(8)}  ${name.slice(0, 150)}`));
}

// The profile's busy stretches over 50 ms (between idle samples), each with
// the functions that took most of it: which work made which long task.
function printTasks(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let run = null;
  const flush = () => {
    if (run && run.us > 50_000) {
      const top = [...run.self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
      console.log(`  busy ${(run.us / 1000).toFixed(0)} ms:`);
      for (const [name, us] of top) console.log(`    ${(us / 1000).toFixed(1).padStart(6)}  ${name.slice(0, 140)}`);
    }
    run = null;
  };
  profile.samples.forEach((id, i) => {
    const name = nameOf(byId.get(id));
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (name === '(idle)') return flush();
    run ??= { us: 0, self: new Map() };
    run.us += dt;
    // Attribute to the innermost frame of ours (wasm or page script) for readability.
    let at = id;
    let label = name;
    for (; at !== undefined; at = parent.get(at)) {
      const n = nameOf(byId.get(at));
      if (/keyward|chunk_|split_|\[admin\]|\[chat\]|\[settings\]/.test(n) && !/js-to-wasm|wasm-to-js/.test(n)) { label = n; break; }
    }
    run.self.set(label, (run.self.get(label) ?? 0) + dt);
  });
  flush();
}
