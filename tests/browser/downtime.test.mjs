// Read-only downtime (issue 22) in a real browser: headless Chromium
// against a real `wardline serve --demo`.
//  * a ward clerk has the registration form open when the operator turns
//    downtime on (`wardline downtime on`); submitting it is refused with a
//    page saying nothing was saved (503) — never a silent drop (H-335);
//  * the bed board then shows the design system's warning callout
//    "Read-only: downtime since HH:MM — record on paper" and still lists
//    the ward's patients; the registration page's form is hidden;
//  * after `wardline downtime off` the banner is gone and the form is back.
// No sleeping for the switch: each page load re-reads it (at most a second
// old), and the test polls the page a bounded number of times.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot } from './harness.mjs'

let server, chrome, page

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'clerk.watford', '/ui/patients/new')
})

after(async () => {
  try { server?.cli('downtime', 'off') } catch { /* the server may be gone */ }
  await chrome?.close()
  await server?.stop()
})

/** Reloads `path` until `check` holds (at most 40 loads). */
async function until (path, check) {
  for (let i = 0; i < 40; i++) {
    await page.goto(server.url + path)
    if (await check()) return
    await page.waitForTimeout(250)
  }
  assert.fail(`never held on ${path}`)
}

test('a form posted during downtime is refused, saying nothing was saved', async () => {
  const form = page.locator('main form[method="post"]').first()
  await assert.doesNotReject(form.waitFor({ state: 'visible' }))
  server.cli('downtime', 'on', '--reason', 'browser test')
  // The open form is submitted as it is; the server refuses it whatever it holds.
  let status = 0
  for (let i = 0; i < 40 && status !== 503; i++) {
    if (i > 0) {
      // A redirect after the last post may still be navigating: wait for it
      // rather than interrupt it.
      await page.goto(server.url + '/ui/patients/new').catch(async () => {
        await page.waitForLoadState()
        await page.goto(server.url + '/ui/patients/new')
      })
      // Once the page knows, the form is hidden; post it from the script.
      if (!(await page.locator('main form[method="post"]').first().isVisible())) {
        const res = await page.evaluate(async () => {
          const f = document.querySelector('main form[method="post"]')
          const r = await fetch(f.action, { method: 'POST', body: new URLSearchParams(new FormData(f)) })
          return { status: r.status, text: await r.text() }
        })
        status = res.status
        if (status === 503) {
          assert.match(res.text, /Nothing was saved: read-only downtime/)
          break
        }
        continue
      }
    }
    // `submit()`, not a click: the browser's own checks of required fields
    // would stop an empty form before the server saw it.
    const [response] = await Promise.all([
      page.waitForResponse(r => r.request().method() === 'POST' && r.url().includes('/ui/patients')),
      page.locator('main form[method="post"]').first().evaluate(f => f.submit())
    ])
    await page.waitForLoadState()
    status = response.status()
    if (status === 503) {
      await assert.doesNotReject(page.getByText('Nothing was saved: read-only downtime').first().waitFor())
      await screenshot(page, 'downtime-refused-form')
    }
  }
  assert.equal(status, 503, 'the post during downtime is refused with 503')
})

test('the bed board shows the downtime banner and still lists the patients', async () => {
  await until('/ui/beds/watford-w1', async () => (await page.locator('[data-testid="downtime-banner"]').count()) > 0)
  const banner = page.locator('[data-testid="downtime-banner"]')
  assert.ok(await banner.isVisible())
  const text = await banner.innerText()
  assert.match(text, /Read-only: downtime since \d\d:\d\d — record on paper/)
  assert.ok(await banner.evaluate(el => el.classList.contains('nhsuk-warning-callout')))
  assert.ok(await page.locator('a[href^="/ui/patients/"]').count() > 0, 'the ward\'s patients are still listed')
  await screenshot(page, 'downtime-bed-board')
  await page.goto(server.url + '/ui/patients/new')
  assert.equal(await page.locator('main form[method="post"]').first().isVisible(), false, 'the write form is hidden')
})

test('downtime off: the banner is gone and the form is back', async () => {
  server.cli('downtime', 'off')
  await until('/ui/beds/watford-w1', async () => (await page.locator('[data-testid="downtime-banner"]').count()) === 0)
  await page.goto(server.url + '/ui/patients/new')
  assert.ok(await page.locator('main form[method="post"]').first().isVisible())
})
