// The chart's sections in a real browser: headless Chromium against a real
// `wardline serve --demo`. A patient with problems, medicines, an allergy
// and a temperature taken in January 2025 is loaded over FHIR REST; then
//  * the ward clerk reads that alerts and allergies are not shown to their
//    position (never "No alerts or allergies recorded") and admits the
//    patient to ward watford-w1;
//  * the ward's nurse sees the Problems and Medicines sections, current
//    entries first and ended ones marked, and the temperature in °C with
//    its date and age, marked not current;
//  * after the nurse discharges the patient the ward still sees the record
//    (the recent-encounter window, issue 18); once the stay ended longer
//    ago than the window (moved back 20 days over FHIR REST), each section
//    says how many entries are not shown to them instead of "none recorded".
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

const WARD = 'watford-w1'
const PATIENT = 'browser-chart-' + Math.random().toString(36).slice(2, 8)
const CHART = `/ui/patients/${PATIENT}`

let server, chrome, clerk, nurse

let token

/** A backend-service token for FHIR REST (the client registered once). */
function systemToken () {
  if (!token) {
    server.cli('client', 'add', 'browser-chart', '--name', 'Browser chart test', '--scope', 'system/*.cruds')
    token = server.cli('token', '--client', 'browser-chart', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  }
  return token
}

/** PUTs each resource over FHIR REST with a backend-service token. */
async function load (resources) {
  const token = systemToken()
  for (const r of resources) {
    const res = await fetch(`${server.url}/fhir/${r.resourceType}/${r.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(r)
    })
    assert.ok(res.ok, `PUT ${r.resourceType}/${r.id}: ${res.status} ${await res.text()}`)
  }
}

function record () {
  const subject = { reference: `Patient/${PATIENT}` }
  const id = s => `${PATIENT}-${s}`
  return [
    {
      resourceType: 'Patient', id: PATIENT, active: true,
      name: [{ family: 'Brightwell', given: ['Ivy'] }], gender: 'female', birthDate: '1950-06-01'
    },
    {
      resourceType: 'AllergyIntolerance', id: id('allergy'), patient: subject,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      code: { coding: [{ system: 'http://snomed.info/sct', code: '91936005', display: 'Allergy to penicillin' }] }
    },
    {
      resourceType: 'Condition', id: id('resolved'), subject,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
      code: { text: 'Community-acquired pneumonia' }, recordedDate: '2026-01-10', abatementDateTime: '2026-02-01'
    },
    {
      resourceType: 'Condition', id: id('copd'), subject,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
      code: { coding: [{ system: 'http://snomed.info/sct', code: '13645005', display: 'Chronic obstructive pulmonary disease' }] },
      onsetDateTime: '2012-09-01', recordedDate: '2012-09-03'
    },
    {
      resourceType: 'MedicationRequest', id: id('stopped'), status: 'stopped', intent: 'order', subject,
      medicationCodeableConcept: { text: 'Amoxicillin 500mg capsules' }, authoredOn: '2026-01-10'
    },
    {
      resourceType: 'MedicationRequest', id: id('inhaler'), status: 'active', intent: 'order', subject,
      medicationCodeableConcept: { coding: [{ system: 'https://dmd.nhs.uk', code: '35936511000001108', display: 'Tiotropium 2.5micrograms/dose inhaler' }] },
      authoredOn: '2020-04-01', dosageInstruction: [{ text: 'Two puffs once a day' }]
    },
    {
      resourceType: 'Observation', id: id('temp'), status: 'final', subject,
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '8310-5', display: 'Body temperature' }] },
      effectiveDateTime: '2025-01-14T09:30:00Z',
      valueQuantity: { value: 37.8, unit: 'Cel', system: 'http://unitsofmeasure.org', code: 'Cel' }
    }
  ]
}

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

/** The `data-current` of each row of a section's table, top to bottom. */
async function currentFlags (page, testid) {
  return page.locator(`[data-testid="${testid}"] tbody tr`).evaluateAll(rows => rows.map(r => r.dataset.current))
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  clerk = await (await chrome.browser.newContext()).newPage()
  nurse = await (await chrome.browser.newContext()).newPage()
  await load(record())
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('the clerk is told which lists their position does not cover, not that none are recorded', async () => {
  await signIn(clerk, server, 'clerk.watford', CHART)
  const alerts = await clerk.textContent('[data-testid="alerts-section"]')
  assert.match(alerts, /Alerts and allergies are not shown to your position\./)
  assert.doesNotMatch(alerts, /No alerts|recorded/)
  assert.match(await clerk.textContent('[data-testid="problems-section"]'), /Problems are not shown to your position\./)
  assert.match(await clerk.textContent('[data-testid="medicines-section"]'), /Medicines are not shown to your position\./)
  assert.equal(await clerk.locator('text=Allergy to penicillin').count(), 0)
  await assertAccessible(clerk, 'chart (clerk)')
  await screenshot(clerk, 'chart-01-clerk')
})

test('the clerk admits the patient to the ward', async () => {
  await clerk.click('a:has-text("Admit")')
  await clerk.waitForSelector('#bed')
  const bed = await clerk.locator(`#bed option[value^="${WARD}-"]`).first().getAttribute('value')
  assert.ok(bed, `no free bed on ${WARD}`)
  await clerk.check('input[name="kind"][value="emergency"]')
  await clerk.selectOption('#bed', bed)
  await Promise.all([clerk.waitForLoadState('domcontentloaded'), clerk.click('button:has-text("Admit patient")')])
  await clerk.waitForLoadState('domcontentloaded')
  // The demo's ward 1 has a patient in isolation: the placement concern is
  // answered with a reason (the check itself is ui.test.mjs's).
  if (await clerk.locator('[data-testid="placement-concerns"]').count()) {
    await clerk.fill('#placement_reason', 'Only bed on the ward')
    await Promise.all([clerk.waitForURL(/\?done=admitted/), clerk.click('button:has-text("Admit patient")')])
  }
  assert.match(clerk.url(), /\?done=admitted/)
})

test('the nurse sees problems and medicines, current ones first, ended ones marked', async () => {
  await signIn(nurse, server, 'nurse.w1', CHART)
  const problems = nurse.locator('[data-testid="problems"]')
  await problems.waitFor()
  assert.deepEqual(await currentFlags(nurse, 'problems'), ['true', 'false'])
  const rows = problems.locator('tbody tr')
  assert.match(await rows.nth(0).textContent(), /Chronic obstructive pulmonary disease.*Active.*Confirmed.*1 September 2012/)
  assert.match(await rows.nth(1).textContent(), /Community-acquired pneumonia.*Resolved.*Ended 1 February 2026/)
  assert.ok(await rows.nth(1).evaluate(r => r.classList.contains('wl-ended')))

  assert.deepEqual(await currentFlags(nurse, 'medicines'), ['true', 'false'])
  const meds = nurse.locator('[data-testid="medicines"] tbody tr')
  assert.match(await meds.nth(0).textContent(), /Tiotropium 2\.5micrograms\/dose inhaler.*Prescribed.*Two puffs once a day.*Active.*From 1 April 2020/)
  assert.match(await meds.nth(1).textContent(), /Amoxicillin 500mg capsules.*Stopped/)
  // Ended entries are marked by more than colour: their status says so.
  assert.equal(await meds.nth(1).locator('.nhsuk-tag--grey').textContent(), 'Stopped')
  assert.match(await nurse.textContent('[data-testid="alerts"]'), /Allergy to penicillin/)
  assert.equal(await nurse.locator('text=not shown to you').count(), 0)
  await assertAccessible(nurse, 'chart (nurse)')
  await screenshot(nurse, 'chart-02-nurse-problems-medicines')
})

test('an old temperature shows in °C with its date and age, marked not current', async () => {
  const row = nurse.locator('[data-testid="observations"] tbody tr', { hasText: 'Body temperature' })
  assert.equal(await row.locator('[data-testid="observation-value"]').textContent(), '37.8 °C')
  const text = await row.textContent()
  assert.match(text, /14 January 2025 09:30/)
  assert.match(await row.locator('[data-testid="observation-age"]').textContent(), /^\d+ years?( \d+ months?)? ago$/)
  assert.match(text, /Not current/)
  assert.equal(await row.getAttribute('data-old'), 'true')
})

test('after the discharge the ward keeps the record for the window, then is told what is withheld', async () => {
  await nurse.click('a:has-text("Discharge")')
  await nurse.waitForSelector('#destination')
  await nurse.selectOption('#destination', { index: 1 })
  await nurse.selectOption('#method', { index: 1 })
  await Promise.all([nurse.waitForURL(/\?done=discharged/), nurse.click('button:has-text("Discharge patient")')])
  // Just discharged: the ward still cares for the patient.
  assert.match(await nurse.textContent('[data-testid="alerts"]'), /Allergy to penicillin/)
  assert.equal(await nurse.locator('text=not shown to you').count(), 0)
  // The stay ended 20 days ago (the server's clock is the system's).
  const auth = { authorization: `Bearer ${systemToken()}`, 'content-type': 'application/fhir+json' }
  const found = await (await fetch(`${server.url}/fhir/Encounter?subject=Patient/${PATIENT}&status=finished`, { headers: auth })).json()
  assert.equal(found.entry.length, 1)
  const enc = found.entry[0].resource
  const day = 86400000
  const iso = t => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z')
  const period = { start: iso(Date.now() - 25 * day), end: iso(Date.now() - 20 * day) }
  enc.period = period
  for (const l of enc.location || []) l.period = period
  const put = await fetch(`${server.url}/fhir/Encounter/${enc.id}`, { method: 'PUT', headers: auth, body: JSON.stringify(enc) })
  assert.ok(put.ok, `PUT Encounter/${enc.id}: ${put.status} ${await put.text()}`)
  await nurse.reload()
  assert.equal((await nurse.textContent('[data-testid="encounters-withheld"]')).trim(), '1 encounter is not shown to you.')
  assert.equal((await nurse.textContent('[data-testid="problems-withheld"]')).trim(), '2 problems are not shown to you.')
  assert.equal((await nurse.textContent('[data-testid="medicines-withheld"]')).trim(), '2 medicines are not shown to you.')
  assert.equal((await nurse.textContent('[data-testid="alerts-withheld"]')).trim(), '1 allergy is not shown to you.')
  // There are no alerts: that, and only that, is "none recorded".
  assert.equal((await nurse.textContent('[data-testid="alerts-none"]')).trim(), 'No alerts recorded.')
  for (const none of ['encounters-none', 'problems-none', 'medicines-none']) {
    assert.equal(await nurse.locator(`[data-testid="${none}"]`).count(), 0, `${none} shown for a list with withheld entries`)
  }
  assert.match(await nurse.textContent('[data-testid="hidden-why"]'), /care relationship/)
  await assertAccessible(nurse, 'chart (nurse, after discharge)')
  await screenshot(nurse, 'chart-03-nurse-after-discharge')
})
