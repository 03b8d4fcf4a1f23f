// Controls follow the user's role (issue 23), in a real browser against a
// real `wardline serve --demo`:
//  * the partner GP, the IG officer and the administrator are not offered
//    Register, Possible duplicates, nor closing or blocking beds; the
//    pharmacist sees an in-patient's chart without Transfer or Discharge;
//  * the ward nurse's bed board opens at her ward; closing a bed asks why
//    (an empty reason is refused with an error summary linking to the
//    field), the board shows the reason, and reopening removes it.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome

async function newPage (user, path = '/ui/patients') {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, user, path)
  return page
}

async function navLabels (page) {
  return page.locator('.nhsuk-header__navigation-link').allTextContents()
}

async function assertAccessible (page, what) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${what}: ${problems.join('; ')}`)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('users without the activity are not offered registering, merging or bed changes', async () => {
  for (const user of ['gp.e82001', 'ig.officer', 'admin']) {
    const page = await newPage(user)
    const nav = await navLabels(page)
    assert.ok(nav.includes('Find a patient'), `${user}: ${nav}`)
    assert.ok(!nav.includes('Register a patient'), `${user}: ${nav}`)
    assert.ok(!nav.includes('Possible duplicates'), `${user}: ${nav}`)
    await page.goto(server.url + '/ui/beds/watford-w1')
    assert.equal(await page.locator('.wl-board').count(), 1, user)
    for (const label of ['Close', 'Block', 'Reopen', 'Mark cleaned']) {
      assert.equal(await page.locator(`.wl-actions :text-is("${label}")`).count(), 0, `${user}: ${label}`)
    }
    await page.context().close()
  }
  // The ward clerk registers patients: both are offered.
  const clerk = await newPage('clerk.watford')
  const nav = await navLabels(clerk)
  assert.ok(nav.includes('Register a patient') && nav.includes('Possible duplicates'), `${nav}`)
  await clerk.context().close()
})

test('the pharmacist sees an in-patient chart without transfer or discharge', async () => {
  const page = await newPage('pharm.watford', '/ui/beds/watford-w1')
  const href = await page.locator('.wl-bed__patient a').first().getAttribute('href')
  await page.goto(server.url + href)
  await page.waitForSelector('[data-testid="current-stay"]')
  // Words, not codes: the gender as people write it.
  const gender = await page.locator('.wl-pair:has(dt:text-is("Gender")) dd').first().textContent()
  assert.ok(['Male', 'Female', 'Other', 'Not known', 'Not recorded'].includes(gender.trim()), gender)
  for (const label of ['Transfer', 'Discharge', 'Cancel admission', 'Cancel transfer']) {
    assert.equal(await page.locator(`main a:text-is("${label}"), main button:text-is("${label}")`).count(), 0, label)
  }
  await page.context().close()
  // The nurse on the ward is offered both.
  const nurse = await newPage('nurse.w1', href)
  assert.equal(await nurse.locator('main a:text-is("Transfer")').count(), 1)
  assert.equal(await nurse.locator('main a:text-is("Discharge")').count(), 1)
  await nurse.context().close()
})

test('the nurse\'s bed board opens at her ward; closing a bed asks why and shows it', async () => {
  const nurse = await newPage('nurse.w1')
  // The header names the position in words: the role and the ward's name,
  // not ids.
  const position = (await nurse.locator('.wl-account-position').textContent()).replace(/^,/, '').trim()
  assert.match(position, /^Staff nurse at [A-Z]/i)
  assert.ok(!/watford-w1|trust|\(/.test(position), position)
  await Promise.all([
    nurse.waitForURL(u => u.pathname === '/ui/beds/watford-w1'),
    nurse.click('.nhsuk-header__navigation-link:text-is("Bed board")')
  ])
  const bed = nurse.locator('li.wl-bed[data-state="available"]').first()
  const bedId = (await bed.getAttribute('data-testid')).replace('bed-', '')
  await Promise.all([
    nurse.waitForURL(u => u.pathname.endsWith(`/${bedId}/state`)),
    bed.locator('a:text-is("Close")').click()
  ])
  await assertAccessible(nurse, 'close a bed')
  // No reason: refused, the summary linking to the field.
  await nurse.click('button:text-is("Close bed")')
  const summary = nurse.locator('.nhsuk-error-summary')
  assert.match(await summary.textContent(), /Say why the bed is closed/)
  assert.equal(await summary.locator('a').getAttribute('href'), '#reason')
  await assertAccessible(nurse, 'close a bed, with its error')
  await screenshot(nurse, 'roles-close-bed-reason')
  await nurse.fill('#reason', 'Broken bed rail')
  await Promise.all([
    nurse.waitForURL(u => u.pathname === '/ui/beds/watford-w1'),
    nurse.click('button:text-is("Close bed")')
  ])
  const closed = nurse.locator(`[data-testid="bed-${bedId}"]`)
  assert.equal(await closed.getAttribute('data-state'), 'closed')
  assert.equal(await closed.locator('[data-testid="bed-reason"]').textContent(), 'Broken bed rail')
  await closed.locator('button:text-is("Reopen")').click()
  await nurse.waitForSelector(`[data-testid="bed-${bedId}"][data-state="available"]`)
  assert.equal(await nurse.locator(`[data-testid="bed-${bedId}"] [data-testid="bed-reason"]`).count(), 0)
  // Every ward is one link away.
  await Promise.all([
    nurse.waitForURL(u => u.pathname === '/ui/beds'),
    nurse.click('a:text-is("All wards")')
  ])
  assert.ok((await nurse.locator('h2').allTextContents()).length > 0)
  await nurse.context().close()
})

test('the browser\'s /favicon.ico is the design system\'s icon', async () => {
  const res = await fetch(server.url + '/favicon.ico')
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'image/x-icon')
  assert.ok((await res.arrayBuffer()).byteLength > 0)
})
