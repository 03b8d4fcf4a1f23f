// The order catalogue in a real browser (headless Chromium against
// `wardline serve --demo`, which loads the seed catalogue): the
// administrator finds it by department with local codes marked, adds a
// test (a wrong range is refused beside the form first), and retires one;
// a clinician can read the catalogue but is not offered changes.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, admin

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  admin = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

test('the administrator sees the catalogue by department, local codes marked', async () => {
  await signIn(admin, server, 'admin', '/ui/catalogue')
  assert.equal(await admin.textContent('h1'), 'Order catalogue')
  for (const dept of ['haematology', 'biochemistry', 'microbiology', 'transfusion', 'radiology']) {
    assert.ok(await admin.locator(`[data-testid="department-${dept}"]`).isVisible(), dept)
  }
  const ue = admin.locator('[data-testid="orderable-path-ue"]')
  assert.match(await ue.textContent(), /Local code/)
  const fbc = admin.locator('[data-testid="orderable-path-fbc"]')
  assert.match(await fbc.textContent(), /26604007/)
  assert.doesNotMatch(await fbc.textContent(), /Local code/)
  assert.ok(await admin.locator('[data-testid="set-sepsis-screen"]').isVisible())
  await assertAccessible(admin, 'catalogue list')
  await screenshot(admin, 'catalogue-01-list')
})

test('admin adds a test: a wrong range is refused with the reason, then it is added', async () => {
  await admin.click('[data-testid="add-orderable"]')
  await admin.waitForURL(u => u.pathname === '/ui/catalogue/new')
  await assertAccessible(admin, 'add form')
  await admin.fill('#id', 'path-zinc')
  await admin.fill('#title', 'Zinc')
  await admin.selectOption('#department', 'biochemistry')
  await admin.check('#code_system-2') // local code
  await admin.fill('#code', 'ZN')
  await admin.fill('#code_display', 'Serum zinc')
  await admin.selectOption('#specimen_type', '119364003')
  await admin.fill('#container', 'Trace element tube (royal blue top)')
  await admin.fill('#colour', 'Royal blue')
  await admin.fill('#retest', '168')
  await admin.fill('#a0_code', '5763-9')
  await admin.fill('#a0_name', 'Zinc')
  await admin.fill('#a0_unit', 'umol/L')
  await admin.fill('#a0_low', '11')
  await admin.fill('#a0_high', '24')
  // A critical low inside the reference range: refused, nothing saved.
  await admin.fill('#a0_clow', '15')
  await admin.click('button:has-text("Add to the catalogue")')
  await admin.waitForSelector('.nhsuk-error-summary')
  assert.match(await admin.textContent('.nhsuk-error-summary'), /critical low \(15\) is inside its reference range/)
  assert.equal(await admin.inputValue('#a0_name'), 'Zinc', 'the form keeps what was typed')
  assert.match(await admin.textContent('[data-testid="results-error"]'), /critical low/)
  assert.equal(await admin.locator('fieldset[data-testid^="analyte-"]').count(), 4, 'the filled row and three blank ones')
  await screenshot(admin, 'catalogue-02-refused')
  await admin.fill('#a0_clow', '')
  await admin.click('button:has-text("Add to the catalogue")')
  await admin.waitForURL(u => u.pathname === '/ui/catalogue/path-zinc')
  assert.match(await admin.textContent('.nhsuk-notification-banner'), /added/)
  assert.match(await admin.textContent('[data-testid="orderable-title"]'), /Zinc/)
  assert.match(await admin.textContent('[data-testid="analytes"]'), /11–24 µmol\/L/)
  assert.ok(await admin.locator('[data-testid="local-code"]').first().isVisible())
  await assertAccessible(admin, 'new test')
  await screenshot(admin, 'catalogue-03-added')

  await admin.goto(server.url + '/ui/catalogue')
  assert.match(await admin.textContent('[data-testid="department-biochemistry"]'), /Zinc/)
})

test('admin retires a test: it stays in the catalogue, marked retired', async () => {
  await admin.goto(server.url + '/ui/catalogue/path-esr')
  await admin.click('button:has-text("Retire")')
  await admin.waitForURL(u => u.pathname === '/ui/catalogue/path-esr')
  assert.match(await admin.textContent('.nhsuk-notification-banner'), /retired/)
  assert.match(await admin.textContent('[data-testid="orderable-title"]'), /Retired/)
  assert.ok(await admin.locator('button:has-text("Reinstate")').isVisible())
  await admin.goto(server.url + '/ui/catalogue')
  assert.match(await admin.textContent('[data-testid="orderable-path-esr"]'), /Retired/)
  assert.match(await admin.textContent('[data-testid="orderable-path-fbc"]'), /Active/)
  await screenshot(admin, 'catalogue-04-retired')
})

test('a clinician reads a test but is offered no changes', async () => {
  const doctor = await (await chrome.browser.newContext()).newPage()
  await signIn(doctor, server, 'dr.watford', '/ui/catalogue/path-fbc')
  assert.match(await doctor.textContent('[data-testid="analytes"]'), /Haemoglobin/)
  assert.equal(await doctor.locator('button:has-text("Retire")').count(), 0)
  assert.equal(await doctor.locator('a:has-text("Edit")').count(), 0)
  const r = await doctor.goto(server.url + '/ui/catalogue/new')
  assert.equal(r.status(), 403)
})
