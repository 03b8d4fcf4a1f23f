// Clinic letters in a real browser: headless Chromium against a real
// `wardline serve --demo`. A patient registered at a demo GP practice, with
// no email address, is in clinic on watford-w1 (an outpatient attendance,
// loaded over FHIR REST); the consultant dr.watford
//  * opens the patient's chart, follows "Clinic letters", and writes the
//    letter from the attendance (pre-filled with the clinic);
//  * tries to sign without a plan (the error summary links to it), writes
//    it, signs: the GP's copy is queued and, with no email address, the
//    patient's copy is on the print worklist;
//  * amends the letter (signed again) and marks the patient's copy of the
//    amended letter printed and posted on the worklist.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

let server, chrome, token
const patient = 'browser-lp'
const encounter = 'browser-op'

async function fhir (method, path, body) {
  const res = await fetch(`${server.url}/fhir/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
    body: body ? JSON.stringify(body) : undefined
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-letters', '--name', 'Browser letters test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-letters', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  await fhir('PUT', `Patient/${patient}`, {
    resourceType: 'Patient',
    id: patient,
    active: true,
    birthDate: '1958-09-12',
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
    name: [{ use: 'official', family: 'Postwick', given: ['Petra'] }],
    address: [{ line: ['12 St Albans Road'], city: 'Watford', postalCode: 'WD17 1RN' }],
    generalPractitioner: [{ reference: 'Organization/gp-e82001' }]
  })
  await fhir('PUT', `Encounter/${encounter}`, {
    resourceType: 'Encounter',
    id: encounter,
    status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
    serviceType: { text: 'Diabetes clinic' },
    subject: { reference: `Patient/${patient}` },
    location: [{ location: { reference: 'Location/watford-w1' }, status: 'active' }],
    period: { start: '2026-11-30T14:00:00Z' }
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a doctor writes, signs and amends a clinic letter; the patient\'s copy is printed from the worklist', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', `/ui/patients/${patient}`)
  await page.click('[data-testid="clinic-letters-link"] a')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/clinic-letters`)
  assert.match(await page.locator('[data-testid="patient-copy"]').innerText(), /printed and posted/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.click(`[data-testid="attendance"][data-encounter="${encounter}"] [data-testid="write-letter"]`)
  await page.waitForURL(u => u.pathname === `/ui/encounters/${encounter}/clinic-letter`)
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.click('[data-testid="start-summary"]')
  await page.waitForURL(u => u.pathname.endsWith('/edit'))
  const id = new URL(page.url()).pathname.split('/')[3]
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'letter-edit')

  // Signing without a plan: the error summary links to the field.
  await page.getByLabel('Clinical summary').fill('HbA1c 58 mmol/mol, improving. Feet checked: normal.')
  await page.click('[data-testid="save"]')
  await page.waitForURL(u => u.pathname === `/ui/clinic-letters/${id}`)
  const attendance = page.locator('[data-testid="heading"][data-key="attendance-details"]')
  assert.match(await attendance.innerText(), /Clinic: Diabetes clinic/)
  await page.click('[data-testid="sign"]')
  assert.equal(await page.locator('.nhsuk-error-summary a[href="#plan"]').count(), 1)

  await page.click('[data-testid="edit"]')
  await page.waitForURL(u => u.pathname.endsWith('/edit'))
  await page.getByLabel('Plan and requested actions (for the GP and the patient)').fill('GP: please repeat HbA1c in three months.')
  await page.click('[data-testid="save"]')
  await page.waitForURL(u => u.search.includes('done=saved'))
  await page.click('[data-testid="sign"]')
  await page.waitForURL(u => u.search.includes('done=signed'))
  assert.equal(await page.locator('[data-testid="summary-status"]').getAttribute('data-status'), 'final')
  const copies = page.locator('[data-testid="copy"]')
  assert.equal(await page.locator('[data-testid="copy"][data-to="Organization/gp-e82001"]').count(), 1)
  assert.equal(await page.locator(`[data-testid="copy"][data-to="Patient/${patient}"][data-how="post"]`).count(), 1)
  assert.ok(await copies.count() >= 2)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'letter-signed')

  // Amended: signed again; the copy of the first version is cancelled.
  await page.click('[data-testid="amend"]')
  await page.waitForURL(u => u.pathname.endsWith('/amend'))
  await page.getByLabel('Plan and requested actions (for the GP and the patient)').fill('GP: please repeat HbA1c in six weeks.')
  await page.click('[data-testid="save"]')
  await page.waitForURL(u => u.search.includes('done=amended'))
  assert.equal(await page.locator('[data-testid="summary-status"]').getAttribute('data-status'), 'amended')
  assert.match(await page.locator('[data-testid="heading"][data-key="plan"]').innerText(), /six weeks/)
  assert.equal(await page.locator(`[data-testid="copy"][data-to="Patient/${patient}"][data-status="cancelled"]`).count(), 1)

  // The print worklist: the amended letter's copy, printed and posted.
  await page.goto(`${server.url}/ui/letter-printing`)
  const item = page.locator('[data-testid="print-item"]', { hasText: 'Petra' })
  assert.equal(await item.count(), 1)
  assert.match(await item.innerText(), /12 St Albans Road/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'letter-print-worklist')
  const pdf = await item.locator('[data-testid="print-pdf"]').getAttribute('href')
  const res = await page.request.get(`${server.url}${pdf}`)
  assert.equal(res.headers()['content-type'], 'application/pdf')
  await item.locator('[data-testid="mark-printed"]').click()
  await page.waitForURL(u => u.search.includes('done='))
  assert.equal(await page.locator('[data-testid="print-item"]', { hasText: 'Petra' }).count(), 0)
})
