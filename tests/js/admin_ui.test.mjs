// Property: the official Socket.IO Admin UI (the static bundle `@socket.io/admin-ui` ships in
// ui/dist, served from a loopback server) logs in to sio-edge in headless Chromium and shows
// it: the server with its client count, the connected clients with their ids in their
// namespace, a room they are in; its disconnect action disconnects that client
// ("io server disconnect"); a wrong password shows "Invalid credentials" and lists nothing.
// Takes the screenshot docs/admin-ui.png. Needs Debian's `chromium` (tests/install-deps.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import puppeteer from 'puppeteer-core';
import { startServer, connect, once, request, userToken, tracker } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const UI_DIR = resolve(here, 'node_modules/@socket.io/admin-ui/ui/dist');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
// docs/admin-ui.png is regenerated with ADMIN_UI_SCREENSHOT=../../docs/admin-ui.png; a plain
// run writes to the temp directory and leaves the checkout clean.
const SCREENSHOT = process.env.ADMIN_UI_SCREENSHOT
  ? resolve(process.env.ADMIN_UI_SCREENSHOT)
  : join(tmpdir(), 'sio-edge-admin-ui.png');
const SECRET = 'admin-ui-secret';
const PASSWORD = 'ui-pass-123';
const NODE_ID = 'sio-edge-ui-test';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

const sockets = tracker();
let statics;
let staticUrl;
let server;
let browser;

/** A static file server for the UI bundle on an ephemeral loopback port. */
function serveUi() {
  return new Promise((res) => {
    const srv = http.createServer(async (req, resp) => {
      const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
      const file = join(UI_DIR, path === '/' ? 'index.html' : path);
      if (!file.startsWith(UI_DIR)) {
        resp.writeHead(403).end();
        return;
      }
      try {
        const body = await readFile(file);
        resp.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' }).end(body);
      } catch {
        resp.writeHead(404).end();
      }
    });
    srv.listen(0, '127.0.0.1', () => res(srv));
  });
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium (tests/install-deps.sh)`);
  statics = await serveUi();
  staticUrl = `http://127.0.0.1:${statics.address().port}`;
  server = await startServer(['--node-id', NODE_ID], {
    JWT_SECRET: SECRET,
    SOCKET_IO_CORS_ORIGIN: staticUrl,
    SOCKET_IO_ADMIN_USERNAME: 'admin',
    SOCKET_IO_ADMIN_PASSWORD_HASH: bcrypt.hashSync(PASSWORD, 4),
  });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
});

after(async () => {
  sockets.closeAll();
  await browser?.close();
  statics?.close();
  await server?.stop();
});

/** A page in its own browser context (fresh localStorage) that reaches loopback only. */
async function newPage() {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await page.setRequestInterception(true);
  // The bundle links Google Fonts and the icon font from a CDN: nothing leaves loopback.
  page.on('request', (r) => (r.url().startsWith('http://127.0.0.1:') ? r.continue() : r.abort()));
  await page.goto(`${staticUrl}/`);
  return page;
}

/** Fills the UI's connection dialog (server URL, username, password) and submits it. */
async function login(page, password) {
  await page.waitForSelector('.v-dialog form input');
  const inputs = await page.$$('.v-dialog form input[type="text"], .v-dialog form input[type="password"]');
  await inputs[0].click({ clickCount: 3 });
  await inputs[0].type(server.url);
  await inputs[1].type('admin');
  await inputs[2].type(password);
  await page.click('.v-dialog form button[type="submit"]');
}

const bodyText = (page) => page.evaluate(() => document.body.innerText);

async function waitText(page, fn, what, ...args) {
  await page.waitForFunction(fn, { timeout: 10_000 }, ...args).catch(async (e) => {
    throw new Error(`${what}: ${e.message}\npage text:\n${(await bodyText(page)).slice(0, 2000)}`);
  });
}

test('the Admin UI logs in, shows the server, sockets and rooms, and disconnects a socket', { timeout: 60_000 }, async () => {
  const a = sockets.add(await connect(server.url, { auth: { token: userToken(SECRET, 'ui-alice') } }));
  const b = sockets.add(await connect(server.url, { auth: { token: userToken(SECRET, 'ui-bob') } }));
  assert.deepEqual(await request(a, 'room:join', { room: 'feed' }), { ok: true });

  const page = await newPage();
  await login(page, PASSWORD);
  await page.waitForFunction(() => !document.querySelector('.v-dialog--active'), { timeout: 10_000 });

  // Servers: our node id, healthy, with its client count (2 clients + the UI itself).
  await page.goto(`${staticUrl}/#/servers/`);
  await waitText(page, (id) => document.body.innerText.includes(id), 'server listed', NODE_ID);
  const row = await page.evaluate((id) => {
    const tr = [...document.querySelectorAll('tr')].find((r) => r.innerText.includes(id));
    return tr ? [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()) : null;
  }, NODE_ID);
  assert.ok(row, 'server row');
  assert.ok(row.includes('3'), `clients count in ${JSON.stringify(row)}`);

  // Sockets of namespace "/": both clients by id.
  await page.goto(`${staticUrl}/#/sockets/`);
  await page.waitForFunction(
    (ids) => ids.every((id) => document.body.innerText.includes(id)),
    { timeout: 10_000 },
    [a.id, b.id],
  );

  // Rooms: the public room alice joined, with its member.
  await page.goto(`${staticUrl}/#/rooms/`);
  await page.waitForFunction(() => document.body.innerText.includes('feed'), { timeout: 10_000 });
  await page.goto(`${staticUrl}/#/n/${encodeURIComponent('/')}/rooms/feed`);
  await page.waitForFunction((id) => document.body.innerText.includes(id), { timeout: 10_000 }, a.id);

  await page.goto(`${staticUrl}/#/sockets/`);
  await page.waitForFunction((id) => document.body.innerText.includes(id), { timeout: 10_000 }, b.id);
  // The route's slide transition must be over, or the picture is half faded.
  await page.waitForFunction(() => document.getAnimations().length === 0, { timeout: 10_000 });
  await page.screenshot({ path: SCREENSHOT });

  // The row's disconnect action (the button in bob's row).
  const bid = b.id;
  const gone = once(b, 'disconnect', 10_000);
  const clicked = await page.evaluate((id) => {
    const tr = [...document.querySelectorAll('tr')].find((r) => r.innerText.includes(id));
    const btn = tr?.querySelector('button');
    btn?.click();
    return Boolean(btn);
  }, bid);
  assert.ok(clicked, 'disconnect button in the socket row');
  const [reason] = await gone;
  assert.equal(reason, 'io server disconnect');
  // The UI dropped it from the namespace's list (the click may also have opened its page).
  await page.goto(`${staticUrl}/#/sockets/`);
  await waitText(page, (ids) => document.body.innerText.includes(ids[0]) && !document.body.innerText.includes(ids[1]),
    'disconnected socket unlisted', [a.id, bid]);
  assert.equal(a.connected, true, 'the other client stays');
});

test('a wrong password shows "Invalid credentials" and lists nothing', { timeout: 30_000 }, async () => {
  const c = sockets.add(await connect(server.url, { auth: { token: userToken(SECRET, 'ui-carol') } }));
  const page = await newPage();
  await login(page, 'not-the-password');
  await waitText(page, () => document.body.innerText.includes('Invalid credentials'), 'error shown');
  await page.goto(`${staticUrl}/#/sockets/`);
  // The dialog stays; nothing from the server reached the page.
  await page.waitForSelector('.v-dialog form input');
  const text = await bodyText(page);
  assert.equal(text.includes(c.id), false);
  assert.equal(text.includes(NODE_ID), false);
});
