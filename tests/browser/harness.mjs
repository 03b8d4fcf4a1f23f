// Test harness for the browser tests: a real `wardline serve --demo` on a
// fresh SQLite data directory and a loopback port, headless Debian Chromium
// through playwright-core, sign-in as a demo user, and screenshots saved as
// test artefacts.
//
// Environment: WARDLINE_BIN (the binary; default target/debug/wardline),
// CHROMIUM (default /usr/bin/chromium), WARDLINE_ARTIFACTS (default
// target/browser-artifacts).

import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, openSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = process.env.WARDLINE_BIN || join(ROOT, 'target', 'debug', 'wardline')
export const ARTIFACTS = process.env.WARDLINE_ARTIFACTS || join(ROOT, 'target', 'browser-artifacts')
export const DEMO_PASSWORD = 'wardline-demo-only'
const STARTUP_MS = 300_000

function freePort () {
  return new Promise((resolvePort, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolvePort(port))
    })
  })
}

const sleep = ms => new Promise(r => setTimeout(r, ms))

// `startServer({ clock: true })` gives the server an injected clinical clock
// (`--clock-offset-file`): `server.setClock(ms)` moves the server's "now" to
// the epoch milliseconds `ms` (it then runs on from there), `server.now()`
// reads it. Sign-in codes and tokens keep the real clock.
export async function startServer ({ clock = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'wardline-browser-'))
  const data = join(dir, 'data')
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const log = openSync(join(dir, 'server.log'), 'a')
  const offsetFile = join(dir, 'clock-offset')
  let offsetSeconds = 0
  const args = ['serve', '--demo', '--data-dir', data, '--listen', `127.0.0.1:${port}`]
  if (clock) {
    writeFileSync(offsetFile, '0\n')
    args.push('--clock-offset-file', offsetFile)
  }
  const proc = spawn(BIN, args, {
    stdio: ['ignore', log, log],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' }
  })
  const deadline = Date.now() + STARTUP_MS
  let healthy = false
  while (Date.now() < deadline && proc.exitCode === null) {
    try {
      const r = await fetch(`${url}/healthz`)
      if (r.ok) { healthy = true; break }
    } catch { /* not listening yet */ }
    await sleep(100)
  }
  if (!healthy) {
    proc.kill('SIGKILL')
    throw new Error(`wardline serve --demo did not become healthy (see ${join(dir, 'server.log')})`)
  }
  const cli = (...args) => execFileSync(BIN, [...args, '--data-dir', data], {
    encoding: 'utf8',
    env: { ...process.env, RUST_LOG: 'warn' }
  })
  return {
    url,
    cli,
    now () {
      return Date.now() + offsetSeconds * 1000
    },
    setClock (ms) {
      if (!clock) throw new Error('startServer({ clock: true }) to move the clock')
      offsetSeconds = Math.round((ms - Date.now()) / 1000)
      writeFileSync(offsetFile, `${offsetSeconds}\n`)
    },
    async stop () {
      proc.kill('SIGTERM')
      for (let i = 0; i < 100 && proc.exitCode === null; i++) await sleep(100)
      if (proc.exitCode === null) proc.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

export async function launchBrowser () {
  // Playwright gives each launch a fresh temporary profile; browser
  // contexts within it are isolated (separate cookies), which the two-user
  // tests rely on.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  return {
    browser,
    async close () {
      await browser.close()
    }
  }
}

// The one-time codes each server has accepted, by user: a code is single
// use, so a second sign-in of the same user within one 30-second step
// waits for the next code (a bounded wait: at most one step).
const spentCodes = new WeakMap()

async function freshCode (server, username) {
  if (!spentCodes.has(server)) spentCodes.set(server, new Map())
  const spent = spentCodes.get(server)
  let code = server.cli('user', 'code', username).trim()
  for (let i = 0; i < 35 && spent.get(username) === code; i++) {
    await sleep(1000)
    code = server.cli('user', 'code', username).trim()
  }
  spent.set(username, code)
  return code
}

/** Signs `username` in through the real sign-in form (password + TOTP),
 * starting from `path`, and returns once that page has loaded. */
export async function signIn (page, server, username, path = '/ui/patients') {
  await page.goto(server.url + path)
  await page.waitForURL(/\/auth\/login/)
  await page.fill('#username', username)
  await page.fill('#password', DEMO_PASSWORD)
  await page.fill('#code', await freshCode(server, username))
  await page.click('button[value="sign-in"]')
  // A user with several positions chooses one.
  if (await page.locator('input[name="stage"][value="choose"]').count() > 0) {
    await page.click('button[value="continue"]')
  }
  await page.waitForURL(u => u.pathname === path.split('?')[0])
}

export async function screenshot (page, name) {
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

/** WCAG basics every page must meet: one h1, a lang, every visible form
 * control labelled, every error message tied to its field. Returns the list
 * of problems (empty when fine). */
export async function accessibilityProblems (page) {
  return page.evaluate(() => {
    const problems = []
    if (!document.documentElement.lang) problems.push('no lang on <html>')
    const h1 = document.querySelectorAll('h1').length
    if (h1 !== 1) problems.push(`${h1} <h1> elements`)
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue
      const labelled = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) ||
        el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      if (!labelled) problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`)
    }
    for (const err of document.querySelectorAll('.nhsuk-error-message[id]')) {
      if (!document.querySelector(`[aria-describedby~="${CSS.escape(err.id)}"]`) &&
        !err.closest('fieldset')) {
        problems.push(`error message ${err.id} not referenced by aria-describedby`)
      }
    }
    for (const img of document.querySelectorAll('img')) {
      if (!img.hasAttribute('alt')) problems.push('img without alt')
    }
    return problems
  })
}

/** A valid NHS number in the synthetic 999 range, different each call. */
export function newNhsNumber () {
  for (;;) {
    const first9 = '999' + String(Math.floor(Math.random() * 1e6)).padStart(6, '0')
    const total = [...first9].reduce((s, d, i) => s + Number(d) * (10 - i), 0)
    let check = 11 - (total % 11)
    if (check === 11) check = 0
    if (check === 10) continue
    return first9 + String(check)
  }
}
