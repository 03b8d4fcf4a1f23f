// Decision support at the point of prescribing, in a real browser:
// headless Chromium against a real `wardline serve --demo` (its starter
// formulary loaded).
//  * an allergy alert gone past with a reason: a low-criticality
//    clarithromycin allergy is recorded for a patient on a Watford ward
//    (through the FHIR REST API, as an allergy recorded elsewhere would
//    be); the consultant dr.watford prescribes erythromycin (the same class,
//    macrolides), is shown the alert with a reason box, gives a reason and
//    signs; the prescription is on the drug chart and its detail page shows
//    the alert with the reason;
//  * a hard stop: a high-criticality penicillin allergy is recorded for
//    another patient; prescribing amoxicillin shows "This cannot be
//    prescribed" with no reason box and no signing button, posting the form
//    by hand with a reason is refused (409), and nothing reaches the chart.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, doctor, headers, patients

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

/** Records an AllergyIntolerance over FHIR REST; returns its id. */
async function recordAllergy (patient, code, criticality) {
  const r = await fetch(`${server.url}/fhir/AllergyIntolerance`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      resourceType: 'AllergyIntolerance',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: 'confirmed' }] },
      type: 'allergy',
      category: ['medication'],
      criticality,
      code,
      patient: { reference: `Patient/${patient}` }
    })
  })
  const text = await r.text()
  assert.equal(r.status, 201, `POST AllergyIntolerance: ${r.status} ${text}`)
  return JSON.parse(text).id
}

/** From the formulary search to the regular prescription's form. */
async function openForm (patient, search, medicine) {
  await doctor.goto(`${server.url}/ui/patients/${patient}/medicines/new?q=${encodeURIComponent(search)}`)
  await doctor.click(`[data-testid="choose-medicine"]:has-text("${medicine}")`)
  await doctor.waitForSelector('#choose-kind')
  await doctor.check('input[name="kind"][value="regular"]')
  await doctor.click('#choose-kind')
  await doctor.waitForSelector('form#prescription')
  await doctor.fill('#dose', '500')
  await doctor.selectOption('#dose_unit', 'mg')
  await doctor.fill('#times', '08:00, 14:00, 22:00')
  await doctor.fill('#indication', 'Community-acquired pneumonia')
}

before(async () => {
  server = await startServer()
  server.cli('client', 'add', 'browser-alerts', '--name', 'Browser prescribing alerts test', '--scope', 'system/*.cruds')
  const token = server.cli('token', '--client', 'browser-alerts', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }
  chrome = await launchBrowser()
  doctor = await (await chrome.browser.newContext()).newPage()
  await signIn(doctor, server, 'dr.watford', '/ui/beds/watford-w2')
  const hrefs = await doctor.locator('main a[href^="/ui/patients/"]').evaluateAll(
    as => as.map(a => a.getAttribute('href')))
  patients = [...new Set(hrefs.map(h => h.split('/')[3]).filter(Boolean))]
  assert.ok(patients.length >= 2, `two patients on the ward: ${patients}`)
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('an allergy alert is gone past with a reason, kept and shown on the prescription', async () => {
  const patient = patients[0]
  const allergy = await recordAllergy(patient, { text: 'Clarithromycin' }, 'low')
  const key = `allergy:AllergyIntolerance/${allergy}`

  await openForm(patient, 'erythromycin', 'Erythromycin')
  await doctor.click('#sign')
  // Refused until a reason is given: the alert with its reason box.
  const alert = doctor.locator(`[data-testid="alert"][data-key="${key}"]`)
  await alert.waitFor()
  assert.equal(await alert.getAttribute('data-grade'), 'override')
  assert.match(await alert.textContent(), /clarithromycin/i)
  assert.equal(await doctor.getAttribute('[data-testid="alerts"]', 'data-hard-stop'), 'false')
  await assertAccessible(doctor, 'prescription form with alerts')
  await screenshot(doctor, 'prescribing-alerts-01-override')

  const reason = 'Tolerated erythromycin in 2024; clarithromycin caused a mild rash only'
  const boxes = doctor.locator('textarea[name^="override."]')
  assert.ok(await boxes.count() >= 1)
  assert.equal(await doctor.locator(`textarea[name="override.${key}"]`).count(), 1)
  for (let i = 0; i < await boxes.count(); i++) await boxes.nth(i).fill(reason)
  await doctor.click('#sign')
  await doctor.waitForURL(/\/medicines\?done=prescribed/)

  // On the chart; its detail keeps the alert and the reason.
  await doctor.click('[data-testid="medicine"]:has-text("Erythromycin")')
  await doctor.waitForURL(/\/ui\/prescriptions\//)
  const reasons = await doctor.locator('[data-testid="override-reason"]').allTextContents()
  assert.ok(reasons.some(r => r.includes(reason)), `reason shown: ${reasons}`)
  await assertAccessible(doctor, 'prescription detail')
  await screenshot(doctor, 'prescribing-alerts-02-detail')
})

test('a hard stop cannot be overridden: no reason box, no signing, the server refuses a forced post', async () => {
  const patient = patients[1]
  const allergy = await recordAllergy(patient, {
    coding: [{ system: 'http://snomed.info/sct', code: '373270004', display: 'Penicillin -class of antibiotic-' }],
    text: 'Penicillins'
  }, 'high')
  const key = `allergy:AllergyIntolerance/${allergy}`

  await openForm(patient, 'amoxicillin 500mg', 'Amoxicillin 500mg capsules')
  await doctor.click('#sign')
  const panel = doctor.locator('[data-testid="alerts"]')
  await panel.waitFor()
  assert.equal(await panel.getAttribute('data-hard-stop'), 'true')
  assert.match(await panel.textContent(), /cannot be prescribed/)
  assert.equal(await doctor.locator(`[data-testid="alert"][data-key="${key}"]`).getAttribute('data-grade'), 'hard-stop')
  // No way past it on the page.
  assert.equal(await doctor.locator('textarea[name^="override."]').count(), 0, 'no reason box')
  assert.equal(await doctor.locator('[data-testid="sign"]').count(), 0, 'no signing button')
  assert.equal(await doctor.locator('[data-testid="start-again"]').count(), 1)
  await assertAccessible(doctor, 'hard stop')
  await screenshot(doctor, 'prescribing-alerts-03-hard-stop')

  // Nor by posting the form by hand with a reason for every alert.
  const forced = await doctor.evaluate(async (key) => {
    const form = document.querySelector('form#prescription')
    const body = new URLSearchParams(new FormData(form))
    for (const li of document.querySelectorAll('[data-testid="alert"]')) {
      body.set(`override.${li.dataset.key}`, 'The consultant accepts the risk')
    }
    body.set(`override.${key}`, 'The consultant accepts the risk')
    const r = await fetch(form.action, { method: 'POST', body, redirect: 'manual' })
    return { status: r.status, text: await r.text() }
  }, key)
  assert.equal(forced.status, 409, 'refused')
  assert.match(forced.text, /cannot be prescribed/)

  await doctor.goto(`${server.url}/ui/patients/${patient}/medicines`)
  assert.equal(await doctor.locator('[data-testid="medicine"]:has-text("Amoxicillin")').count(), 0,
    'nothing reached the drug chart')
})
