import { expect, test, type Page } from '@playwright/test';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PASSWORD, uniqueEmail } from './helpers';

// An upgrade while a tab is open: keyward is rebuilt with a different wasm
// and restarted. The open page goes on working, a new page load gets the
// new build (never the old wasm from the browser's cache, where it may
// stay for a year), and the old build's files are still there for tabs
// that have not reloaded yet.
//
// This test runs its own keyward on a copy of the site, so the rebuild
// touches nothing the other tests use.

const repo = path.resolve(__dirname, '../..');
const keyward = path.join(repo, 'target/debug/keyward');
const builtSite = path.resolve(repo, process.env.LEPTOS_SITE_ROOT ?? 'target/site-debug');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A wasm custom section: ignored when the module runs, but other bytes. */
function customSection(name: string, payload: string): Buffer {
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n) byte |= 0x80;
      out.push(byte);
    } while (n);
    return out;
  };
  const body = Buffer.concat([Buffer.from(leb(name.length)), Buffer.from(name), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0, ...leb(body.length)]), body]);
}

class Server {
  private child?: ChildProcess;
  constructor(
    readonly base: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  async start(): Promise<void> {
    this.child = spawn(keyward, ['serve'], { cwd: repo, env: this.env, stdio: 'ignore' });
    for (let tries = 0; tries < 300; tries++) {
      try {
        if ((await fetch(`${this.base}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('keyward did not start');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/** The build directory the page loaded its wasm from. */
function wasmBuild(requests: string[]): string | undefined {
  const wasm = requests.filter((url) => url.endsWith('/keyward.wasm')).at(-1);
  return wasm?.match(/\/pkg\/v\/([0-9a-f]+)\//)?.[1];
}

async function hydrated(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true', { timeout: 30_000 });
}

test('after an upgrade that changes the wasm, an open page still works and the next load hydrates with the new build', async ({
  page,
}) => {
  test.setTimeout(90_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-upgrade-'));
  const site = path.join(dir, 'site');
  fs.cpSync(builtSite, site, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite:${path.join(dir, 'keyward.db')}?mode=rwc`,
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: site,
    KEYWARD_MASTER_KEY: 'a2V5d2FyZC1lMmUtbWFzdGVyLWtleS0zMi1ieXRlcyE=',
    ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
    RUST_LOG: 'warn',
  };
  const server = new Server(base, env);
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  try {
    await server.start();
    await page.goto(`${base}/signup`);
    await hydrated(page);
    await page.getByLabel('Email').fill(uniqueEmail('upgrade'));
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign up' }).click();
    await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
    const before = wasmBuild(requests);
    expect(before, 'the page loads its build from /pkg/v/<id>/').toBeTruthy();

    // The upgrade: a wasm with other bytes, prepared as `make build` does,
    // and keyward restarted on it.
    fs.appendFileSync(path.join(site, 'pkg/keyward.wasm'), customSection('keyward-upgrade', `${Date.now()}`));
    execFileSync(keyward, ['prepare-assets', '--quality', '1'], { cwd: repo, env, stdio: 'ignore' });
    await server.stop();
    await server.start();

    // The open page still works: it navigates and its server calls answer.
    await page.getByRole('link', { name: 'Settings' }).click();
    await expect(page).toHaveURL(`${base}/settings`);
    await expect(page.getByText('No key saved')).toBeVisible();
    // Its build is still served, for tabs that load a file late.
    const old = await fetch(`${base}/pkg/v/${before}/keyward.wasm`);
    expect(old.status).toBe(200);

    // A new page load gets the new build and hydrates with it.
    requests.length = 0;
    await page.goto(`${base}/chat`);
    await hydrated(page);
    const after = wasmBuild(requests);
    expect(after).toBeTruthy();
    expect(after).not.toBe(before);
    await page.getByRole('link', { name: 'Settings' }).click();
    await expect(page.getByText('No key saved')).toBeVisible();
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
