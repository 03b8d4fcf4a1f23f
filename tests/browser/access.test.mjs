// Information governance in a real browser (headless Chromium against
// `wardline serve --demo`): a nurse opening a patient outside her ward is
// told she has no access and uses break-glass from that page; the privacy
// officer finds it in the review list; a ward clerk records a patient's
// consent decision in the chart, and the ward's consultant sees it.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

const REASON = 'Collapsed in the corridor, no notes available'
let server, chrome, nurse

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  nurse = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

async function newPage (username, path) {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, username, path)
  return page
}

let patientPath

test('a nurse outside the patient\'s ward sees "You do not have access" and uses break-glass', async () => {
  await signIn(nurse, server, 'nurse.w1', '/ui/patients')
  await nurse.fill('#q', 'Smith')
  await nurse.click('main button:has-text("Search")')
  await nurse.waitForSelector('[data-testid="patient-results"]')
  const links = await nurse.locator('[data-testid="patient-results"] tbody a').evaluateAll(as => as.map(a => a.getAttribute('href')))
  // The first Smith the nurse has no relationship with (not on her ward).
  for (const href of links) {
    await nurse.goto(server.url + href)
    if (await nurse.locator('[data-testid="no-access"]').count() > 0) { patientPath = href; break }
  }
  assert.ok(patientPath, 'every Smith is on the nurse\'s ward')
  assert.ok(await nurse.locator('[data-testid="break-glass"]').isVisible(), 'no break-glass form on the no-access page')
  await assertAccessible(nurse, 'no-access page')
  await screenshot(nurse, 'access-01-no-access')

  // The reason is required.
  await nurse.click('button:has-text("Use emergency access")')
  await nurse.waitForSelector('.nhsuk-error-summary')
  assert.match(await nurse.textContent('.nhsuk-error-summary'), /reason/i)
  assert.equal(await nurse.getAttribute('.nhsuk-error-summary a', 'href'), '#reason')
  await assertAccessible(nurse, 'break-glass with errors')
  await screenshot(nurse, 'access-02-break-glass-no-reason')

  await nurse.fill('#reason', REASON)
  await nurse.selectOption('#minutes', '30')
  await nurse.click('button:has-text("Use emergency access")')
  await nurse.waitForURL(/\?done=break-glass/)
  assert.equal(new URL(nurse.url()).pathname, patientPath)
  const inForce = await nurse.textContent('[data-testid="break-glass-in-force"]')
  assert.match(inForce, new RegExp(REASON))
  assert.equal(await nurse.locator('[data-testid="no-access"]').count(), 0)
  await assertAccessible(nurse, 'chart under break-glass')
  await screenshot(nurse, 'access-03-break-glass-in-force')
})

test('the privacy officer finds the break-glass use in the review list', async () => {
  const ig = await newPage('ig.officer', '/ui/break-glass')
  const row = ig.locator('[data-testid="break-glass-review"]', { hasText: REASON })
  await row.waitFor()
  assert.match(await row.textContent(), /nurse\.w1/)
  assert.match(await row.textContent(), new RegExp(patientPath.split('/').pop()))
  assert.match(await ig.textContent('nav[aria-label="Menu"]'), /Break-glass reviews/)
  await assertAccessible(ig, 'break-glass review list')
  await screenshot(ig, 'access-04-review-list')
  await ig.context().close()
})

test('a ward clerk records a consent decision; the ward\'s consultant sees it', async () => {
  const clerk = await newPage('clerk.watford', '/ui/beds/watford-w1')
  // A patient in a bed on the ward: in the clerk's care.
  const href = await clerk.locator('main a[href^="/ui/patients/"]').first().getAttribute('href')
  await clerk.goto(server.url + href)
  await clerk.waitForSelector('[data-testid="consent"]')
  await clerk.click('a:has-text("Record a consent decision")')
  await clerk.waitForSelector('h1:has-text("Record a consent decision")')
  await assertAccessible(clerk, 'consent form')
  // Nothing chosen: the form says what is missing.
  await clerk.click('button:has-text("Record decision")')
  await clerk.waitForSelector('.nhsuk-error-summary')
  assert.match(await clerk.textContent('.nhsuk-error-summary'), /Choose what the patient has decided/)
  await assertAccessible(clerk, 'consent form with errors')
  await clerk.check('input[name="kind"][value="opt-out"]')
  await screenshot(clerk, 'access-05-consent-form')
  await clerk.click('button:has-text("Record decision")')
  await clerk.waitForURL(/\?done=consent/)
  const section = await clerk.textContent('[data-testid="consent-decisions"]')
  assert.match(section, /National data opt-out/)
  assert.match(section, /In force/)
  await assertAccessible(clerk, 'chart with consent')
  await screenshot(clerk, 'access-06-consent-recorded')

  const doctor = await newPage('dr.watford', href)
  assert.match(await doctor.textContent('[data-testid="consent-decisions"]'), /National data opt-out/)
  // Recording is for registration staff: the consultant is not offered it.
  assert.equal(await doctor.locator('a:has-text("Record a consent decision")').count(), 0)
  await doctor.context().close()

  // The patient changes their mind.
  await clerk.click('[data-testid="consent-decisions"] button:has-text("Withdraw")')
  await clerk.waitForURL(/\?done=consent-withdrawn/)
  assert.match(await clerk.textContent('[data-testid="consent-decisions"]'), /Withdrawn/)
  await clerk.context().close()
})
