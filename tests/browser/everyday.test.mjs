// Everyday use (issue 23), in a real browser against a real `wardline serve --demo`:
//  * a SMART app's sign-in page is the NHS design system's (header, error
//    summary linking to each field) and says in words what the app asks for;
//  * the chart says specialties, encounter classes and statuses in words;
//  * on a 390 px wide phone the header stays compact and every primary
//    button spans the width.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function assertAccessible (page, what) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${what}: ${problems.join('; ')}`)
}

test("a SMART app's sign-in page is the design system's and says what the app asks for", async () => {
  const redirect = 'http://127.0.0.1:9/callback'
  const scope = 'launch/patient patient/*.rs openid fhirUser'
  server.cli('client', 'add', 'ward-app', '--name', 'Ward Observations App', '--scope', scope, '--redirect-uri', redirect)
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'ward-app',
    redirect_uri: redirect,
    scope,
    state: 'st1',
    aud: `${server.url}/fhir`,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256'
  })
  const page = await (await chrome.browser.newContext()).newPage()
  await page.goto(`${server.url}/auth/authorize?${q}`)
  assert.equal(await page.locator('header.nhsuk-header').count(), 1)
  assert.equal(await page.locator('h1').textContent(), 'Sign in')
  const asks = (await page.locator('[data-testid="app-asks"] li').allTextContents()).map(s => s.trim()).sort()
  assert.deepEqual(asks, [
    'ask you which patient to work on',
    'know who you are: your name and position',
    'read all kinds of record of the patient you choose'
  ])
  assert.match(await page.locator('main').textContent(), /Ward Observations App/)
  await assertAccessible(page, 'SMART sign-in')
  // Nothing typed: the error summary links to each field.
  await page.click('button[value="sign-in"]')
  const summary = page.locator('.nhsuk-error-summary')
  assert.equal(await summary.count(), 1)
  const links = await summary.locator('a').evaluateAll(as => as.map(a => a.getAttribute('href')))
  assert.deepEqual(links, ['#username', '#password', '#code'])
  assert.match(await page.title(), /^Error: /)
  await screenshot(page, 'everyday-smart-sign-in')
  await page.context().close()
})

test('the chart says specialties, encounter classes and statuses in words', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1?all')
  // The first occupied bed's patient.
  const link = page.locator('.wl-board a[href^="/ui/patients/"]').first()
  await link.click()
  await page.waitForURL(/\/ui\/patients\/[^/]+$/)
  const main = await page.locator('main').textContent()
  const specialty = page.locator('dt:text-is("Specialty") + dd')
  if (await specialty.count() > 0) {
    const words = (await specialty.textContent()).trim()
    assert.doesNotMatch(words, /^\d+$/, `specialty as a number: ${words}`)
  }
  assert.doesNotMatch(main, /\b(in-progress|finished|IMP|AMB|EMER)\b/, 'codes on the chart')
  assert.match(main, /Inpatient/)
  assert.match(main, /In progress|Finished/)
  await page.context().close()
})

test('on a 390 px phone the header is compact and primary buttons span the width', async () => {
  const context = await chrome.browser.newContext({ viewport: { width: 390, height: 844 } })
  const page = await context.newPage()
  await signIn(page, server, 'clerk.watford', '/ui/patients')
  for (const path of ['/ui/patients', '/ui/patients/new']) {
    await page.goto(server.url + path)
    // The menu is one row: what does not fit is under "More" (the design
    // system's script); who is signed in shares a row, in small type.
    const header = await page.locator('header.nhsuk-header').boundingBox()
    const nav = await page.locator('.nhsuk-header__navigation').boundingBox()
    assert.ok(nav.height <= 64, `${path}: the menu is ${nav.height}px tall`)
    assert.ok(header.height <= 300, `${path}: header ${header.height}px tall`)
    assert.ok(await page.locator('.nhsuk-header__menu-toggle').isVisible(), `${path}: no "More" menu`)
    const widths = await page.evaluate(() => {
      const main = document.querySelector('main').getBoundingClientRect().width
      return [...document.querySelectorAll('main .nhsuk-button:not(.nhsuk-button--secondary)')]
        .filter(b => b.offsetParent !== null)
        .map(b => ({ text: b.textContent.trim(), width: b.getBoundingClientRect().width, main }))
    })
    assert.ok(widths.length > 0, `${path}: no primary button`)
    for (const w of widths) {
      assert.ok(w.width >= w.main - 2, `${path}: "${w.text}" is ${w.width}px of ${w.main}px`)
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 0, `${path}: the page is ${overflow}px wider than the phone`)
    await screenshot(page, `everyday-390${path.replaceAll('/', '-')}`)
  }
  await context.close()
})
