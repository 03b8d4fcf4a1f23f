// The drug round in a real browser: headless Chromium against a real
// `wardline serve --demo` (ward watford-w1's seeded drug round).
//  * the staff nurse nurse.w1 opens their drug round, gives a due dose
//    (it shows as given, by them) and records another as not given with a
//    reason (it shows as not given, with the reason);
//  * an as-required medicine given an hour ago is refused with the time
//    the next dose may be given, and nothing is recorded.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, nurse

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  nurse = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a nurse gives a dose and records an omission on the drug round', async () => {
  await signIn(nurse, server, 'nurse.w1', '/ui/wards/watford-w1/drug-round')
  // The nurse's own round is their ward's.
  await nurse.goto(server.url + '/ui/drug-round')
  await nurse.waitForURL(/\/ui\/wards\/watford-w1\/drug-round/)
  await nurse.waitForSelector('[data-testid="round-patient"]')
  await assertAccessible(nurse, 'drug round')
  await screenshot(nurse, 'mar-01-round')

  // The regular medicine due this hour: give it.
  const due = nurse.locator('li[data-testid="dose"][data-slot*="-reg/"]:has([data-testid="record-dose"])')
  assert.ok(await due.count() >= 1, 'a regular dose is due')
  const slot = await due.first().getAttribute('data-slot')
  await due.first().locator('[data-testid="record-dose"]').click()
  await nurse.waitForSelector('[data-testid="give-form"]')
  await assertAccessible(nurse, 'dose form')
  await nurse.fill('#note', 'Taken with water')
  await nurse.click('[data-testid="give"]')
  await nurse.waitForURL(/done=given/)
  const given = nurse.locator(`li[data-testid="dose"][data-slot="${slot}"]`)
  assert.equal(await given.getAttribute('data-state'), 'given')
  assert.match(await given.textContent(), /Given .* by /)

  // The late time-critical dose: record it as not given, with a reason.
  const late = nurse.locator('li[data-testid="dose"][data-state="overdue"][data-slot*="-tc/"]')
  assert.ok(await late.count() >= 1, 'a late time-critical dose')
  assert.match(await late.first().textContent(), /late time-critical/)
  const lateSlot = await late.first().getAttribute('data-slot')
  await late.first().locator('[data-testid="record-dose"]').click()
  await nurse.waitForSelector('[data-testid="omit-form"]')
  await nurse.click('[data-testid="omit"]')
  // No reason: the form says so at the field.
  await nurse.waitForSelector('.nhsuk-error-summary')
  assert.match(await nurse.textContent('.nhsuk-error-summary'), /Choose why/)
  await assertAccessible(nurse, 'omit form with an error')
  await nurse.selectOption('#reason', 'nil-by-mouth')
  await nurse.fill('#omit_note', 'Nil by mouth before theatre')
  await nurse.click('[data-testid="omit"]')
  await nurse.waitForURL(/done=omitted/)
  const omitted = nurse.locator(`li[data-testid="dose"][data-slot="${lateSlot}"]`)
  assert.equal(await omitted.getAttribute('data-state'), 'not-given')
  assert.match(await omitted.textContent(), /Not given: Nil by mouth/)
  await screenshot(nurse, 'mar-02-recorded')
})

test('an as-required dose is refused before its interval', async () => {
  await nurse.goto(server.url + '/ui/drug-round')
  await nurse.waitForSelector('[data-testid="round-patient"]')
  const row = nurse.locator('tr[data-testid="round-rx"][data-request*="-prn"]').first()
  assert.match(await row.locator('[data-testid="prn-status"]').textContent(), /Next from/)
  await row.locator('[data-testid="give-prn"]').click()
  await nurse.waitForSelector('[data-testid="prn-limits"]')
  assert.match(await nurse.textContent('[data-testid="prn-limits"]'), /At least 4 hours between doses/)
  const before = await nurse.textContent('[data-testid="prn-limits"]')
  await nurse.click('[data-testid="give"]')
  await nurse.waitForSelector('.nhsuk-error-summary')
  const refusal = await nurse.textContent('.nhsuk-error-summary')
  assert.match(refusal, /Too soon/)
  assert.match(refusal, /The next dose may be given from \d{4}-\d\d-\d\d \d\d:\d\d/)
  await assertAccessible(nurse, 'as-required refusal')
  await screenshot(nurse, 'mar-03-prn-refused')
  // Nothing was recorded: the last dose is still the one an hour ago.
  assert.equal(await nurse.textContent('[data-testid="prn-limits"]'), before)
})
