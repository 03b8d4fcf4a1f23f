// Prescribing on the drug chart in a real browser: headless Chromium
// against a real `wardline serve --demo`.
//  * the consultant dr.watford opens an admitted patient (a bed on a
//    Watford ward), goes to the drug chart, searches the formulary, chooses
//    a medicine and the kind, and prescribes a regular and an as-required
//    medicine; both are on the drug chart in their sections, signed;
//  * discontinuing one with a reason moves it to the stopped list with the
//    reason.
// Two formulary entries are written over FHIR REST first (as a formulary
// manager would), so the test does not depend on the demo formulary's
// contents. The alerts panel's flows (override reasons, hard stops) are
// the decision-support tests'.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, doctor, drugChart

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

function medication (id, name) {
  return {
    resourceType: 'Medication',
    id,
    status: 'active',
    code: { coding: [{ system: 'https://fhir.wardline.invalid/CodeSystem/local-medicine', code: id.replace('med-', ''), display: name }] },
    form: { text: 'Tablet' },
    ingredient: [{
      itemCodeableConcept: { text: name },
      strength: { numerator: { value: 500, unit: 'mg' }, denominator: { value: 1, unit: 'tablet' } }
    }],
    extension: [{
      url: 'https://fhir.wardline.invalid/StructureDefinition/formulary-entry',
      extension: [
        { url: 'vtm', valueCoding: { system: 'https://fhir.wardline.invalid/CodeSystem/local-medicine', code: id.replace('med-', 'LV'), display: name.split(' ')[0] } },
        { url: 'unitOfDose', valueString: 'tablet' },
        { url: 'route', valueCoding: { system: 'http://snomed.info/sct', code: '26643006', display: 'Oral' } }
      ]
    }]
  }
}

async function addMedicines () {
  server.cli('client', 'add', 'browser-prescribe', '--name', 'Browser prescribing test', '--scope', 'system/*.cruds')
  const token = server.cli('token', '--client', 'browser-prescribe', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }
  for (const [id, name] of [['med-LBROWSER1', 'Browsaparin 500mg tablets'], ['med-LBROWSER2', 'Browsocodone 500mg tablets']]) {
    const r = await fetch(`${server.url}/fhir/Medication/${id}`, { method: 'PUT', headers, body: JSON.stringify(medication(id, name)) })
    assert.ok(r.ok, `PUT Medication/${id}: ${r.status} ${await r.text()}`)
  }
}

before(async () => {
  server = await startServer()
  await addMedicines()
  chrome = await launchBrowser()
  doctor = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function choose (query, id, kind) {
  await doctor.goto(drugChart)
  await doctor.click('[data-testid="prescribe"]')
  await doctor.fill('#q', query)
  await doctor.click('#search')
  await doctor.click(`[data-testid="choose-medicine"][data-id="${id}"]`)
  await doctor.check(`input[name="kind"][value="${kind}"]`)
  await doctor.click('#choose-kind')
  await doctor.waitForSelector('form#prescription')
}

test('the consultant prescribes a regular and an as-required medicine', async () => {
  await signIn(doctor, server, 'dr.watford', '/ui/beds/watford-w2')
  const href = await doctor.locator('main a[href^="/ui/patients/"]').first().getAttribute('href')
  await doctor.goto(server.url + href)
  await doctor.click('[data-testid="drug-chart-link"] a')
  await doctor.waitForSelector('h2:has-text("Drug chart")')
  drugChart = doctor.url().split('?')[0]
  await assertAccessible(doctor, 'drug chart')

  await choose('browsaparin', 'med-LBROWSER1', 'regular')
  await assertAccessible(doctor, 'prescription form')
  await doctor.fill('#dose', '1000')
  await doctor.selectOption('#dose_unit', 'mg')
  await doctor.selectOption('#route', '26643006')
  await doctor.fill('#times', '08:00, 20:00')
  await doctor.fill('#indication', 'Osteoarthritis of the knee')
  await screenshot(doctor, 'prescribe-01-regular')
  await doctor.click('#sign')
  await doctor.waitForURL(/\/medicines\?done=prescribed/)

  await choose('browsocodone', 'med-LBROWSER2', 'as-required')
  await doctor.fill('#dose', '1')
  await doctor.selectOption('#dose_unit', 'tablet')
  await doctor.fill('#prn_reason', 'pain')
  await doctor.fill('#min_interval', '4')
  await doctor.fill('#max_24h', '4')
  await doctor.fill('#indication', 'Breakthrough pain')
  await doctor.click('#sign')
  await doctor.waitForURL(/\/medicines\?done=prescribed/)

  const regular = doctor.locator('[data-testid="section-regular"] [data-testid="prescription"]')
  assert.equal(await regular.count(), 1)
  assert.match(await regular.textContent(), /Browsaparin 500mg tablets/)
  assert.match(await regular.textContent(), /1000 mg/)
  assert.match(await regular.textContent(), /08:00, 20:00/)
  assert.match(await regular.textContent(), /Signed /)
  const prn = doctor.locator('[data-testid="section-as-required"] [data-testid="prescription"]')
  assert.equal(await prn.count(), 1)
  assert.match(await prn.textContent(), /As required for pain, at least 4 h apart, at most 4 tablet in 24 h/)
  await assertAccessible(doctor, 'drug chart with prescriptions')
  await screenshot(doctor, 'prescribe-02-chart')
})

test('discontinuing one with a reason moves it to the stopped list', async () => {
  await doctor.goto(drugChart)
  await doctor.click('[data-testid="section-as-required"] [data-testid="medicine"]')
  await doctor.waitForSelector('[data-testid="discontinue-form"]')
  await assertAccessible(doctor, 'prescription')
  await doctor.fill('#discontinue-reason', 'Pain controlled on regular analgesia')
  await doctor.click('#discontinue')
  await doctor.waitForURL(/\?done=discontinued/)
  assert.match(await doctor.textContent('[data-testid="status-reason"]'), /Pain controlled on regular analgesia/)
  await doctor.goto(drugChart)
  assert.equal(await doctor.locator('[data-testid="section-as-required"]').count(), 0)
  assert.equal(await doctor.locator('[data-testid="section-regular"] [data-testid="prescription"]').count(), 1)
  const ended = doctor.locator('[data-testid="section-ended"] [data-testid="prescription"]')
  assert.equal(await ended.count(), 1)
  assert.match(await ended.textContent(), /Browsocodone/)
  assert.match(await ended.textContent(), /Pain controlled on regular analgesia/)
  await screenshot(doctor, 'prescribe-03-discontinued')
})
