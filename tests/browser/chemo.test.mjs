// Chemotherapy in a real browser: headless Chromium against a real
// `wardline serve --demo` (which loads the demo regimens). Fixture
// formulary Medications, a patient on ward watford-w1 with a height,
// weight and blood counts are written over FHIR REST; then
//  * dr.watford opens the patient's chemotherapy page (the BSA by both
//    formulas), chooses AC cycle 1, sees every dose's calculation and
//    prescribes it;
//  * dr2.watford verifies as the second clinician;
//  * pharm.watford verifies as the pharmacist;
//  * dr.watford releases it: the doses are shown, the cycle released.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

const SUFFIX = Math.random().toString(36).slice(2, 8)
const PATIENT = 'browser-chemo-' + SUFFIX
const FORMULARY_EXT = 'https://fhir.wardline.invalid/StructureDefinition/formulary-entry'

let server, chrome, token

async function fhir (method, path, body) {
  const res = await fetch(`${server.url}/fhir${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
    body: body && JSON.stringify(body)
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

const daysAgo = d => new Date(Date.now() - d * 86400000).toISOString().slice(0, 19) + 'Z'

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-chemo', '--name', 'Browser chemotherapy test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-chemo', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const subject = { reference: `Patient/${PATIENT}` }
  const obs = (id, code, value, unit, at) => ({
    resourceType: 'Observation', id: `${PATIENT}-${id}`, status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] }, subject, effectiveDateTime: at,
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit }
  })
  const LOCAL = 'https://fhir.wardline.invalid/CodeSystem/local-medicine'
  const meds = ['Doxorubicin', 'Cyclophosphamide'].map(d => ({
    resourceType: 'Medication', id: `med-LB-${d.toUpperCase()}-${SUFFIX}`, status: 'active',
    code: { coding: [{ system: LOCAL, code: `LB-${d.toUpperCase()}-${SUFFIX}`, display: `${d} (browser test)` }] },
    form: { text: 'Solution for infusion' },
    extension: [{
      url: FORMULARY_EXT,
      extension: [
        { url: 'vtm', valueCoding: { system: LOCAL, code: `LVB-${d.toUpperCase()}`, display: d } },
        { url: 'route', valueCoding: { system: 'http://snomed.info/sct', code: '47625008', display: 'Intravenous route' } },
        { url: 'unitOfDose', valueString: 'mg' }
      ]
    }]
  }))
  await fhir('POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        resourceType: 'Patient', id: PATIENT, active: true,
        name: [{ use: 'official', family: 'Ashworth', given: ['Miriam'] }], gender: 'female', birthDate: '1961-09-30'
      },
      {
        resourceType: 'Encounter', id: `${PATIENT}-enc`, status: 'in-progress',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
        subject, location: [{ location: { reference: 'Location/watford-w1' }, status: 'active' }],
        period: { start: daysAgo(1) }
      },
      obs('height', '8302-2', 165, 'cm', daysAgo(40)),
      obs('weight', '29463-7', 64, 'kg', daysAgo(3)),
      obs('neut', '751-8', 2.6, '10*9/L', daysAgo(1)),
      obs('plt', '777-3', 240, '10*9/L', daysAgo(1)),
      ...meds
    ].map(r => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } }))
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a chemotherapy cycle is prescribed, verified twice and released, with its doses shown', async () => {
  // --- dr.watford prescribes AC cycle 1 -------------------------------------
  const drContext = await chrome.browser.newContext()
  const dr = await drContext.newPage()
  const path = `/ui/patients/${PATIENT}/chemotherapy`
  await signIn(dr, server, 'dr.watford', path)
  // √(165 × 64 / 3600) = 1.71 m² (Mosteller); DuBois 1.71 m².
  const bsa = await dr.textContent('[data-testid="bsa"]')
  assert.match(bsa, /BSA \(Mosteller\)\s*1\.71 m²/, bsa)
  assert.match(bsa, /BSA \(DuBois\)/)
  assert.deepEqual(await accessibilityProblems(dr), [])
  await dr.selectOption('#regimen', 'chemo-ac')
  await dr.fill('#cycle', '1')
  await Promise.all([
    dr.waitForURL(u => u.searchParams.get('regimen') === 'chemo-ac'),
    dr.click('button:has-text("Calculate doses")')
  ])
  const table = await dr.textContent('[data-testid="plan-doses"]')
  // Doxorubicin 60 mg/m² × 1.71 = 102.6 mg; cyclophosphamide 600 × 1.71 = 1026 mg.
  assert.match(table, /60 mg\/m² × 1\.71 m² = 102\.6 mg/, table)
  assert.match(table, /1026 mg/)
  assert.deepEqual(await accessibilityProblems(dr), [])
  await screenshot(dr, 'chemo-preview')
  await Promise.all([
    dr.waitForURL(u => u.searchParams.get('done') === 'prescribed'),
    dr.click('button:has-text("Prescribe cycle")')
  ])
  const cycle = new URL(dr.url()).pathname
  assert.match(await dr.textContent('[data-testid="cycle-status"]'), /not released/)
  // The prescriber is offered no verification of their own cycle.
  assert.equal(await dr.locator('button:has-text("Verify as second clinician")').count(), 0)
  // dr.watford's session is kept for the release: a second sign-in within
  // the same 30-second window would reuse a spent one-time code.

  // --- dr2.watford: second clinician -----------------------------------------
  const dr2Context = await chrome.browser.newContext()
  const dr2 = await dr2Context.newPage()
  await signIn(dr2, server, 'dr2.watford', cycle)
  await Promise.all([
    dr2.waitForURL(u => u.searchParams.get('done') === 'verified'),
    dr2.click('button:has-text("Verify as second clinician")')
  ])
  assert.match(await dr2.textContent('[data-testid="verifications"]'), /Second clinician\s*Verified by/)
  await dr2Context.close()

  // --- pharm.watford: pharmacist -----------------------------------------------
  const phContext = await chrome.browser.newContext()
  const ph = await phContext.newPage()
  await signIn(ph, server, 'pharm.watford', cycle)
  await Promise.all([
    ph.waitForURL(u => u.searchParams.get('done') === 'verified'),
    ph.click('button:has-text("Verify as pharmacist")')
  ])
  assert.match(await ph.textContent('[data-testid="verifications"]'), /Pharmacist\s*Verified by/)
  await phContext.close()

  // --- dr.watford releases ---------------------------------------------------------
  const rel = dr
  await rel.goto(server.url + cycle)
  const checks = await rel.textContent('[data-testid="checks"]')
  assert.match(checks, /Neutrophils[\s\S]*2\.6/, checks)
  await Promise.all([
    rel.waitForURL(u => u.searchParams.get('done') === 'released'),
    rel.click('button:has-text("Release cycle")')
  ])
  assert.match(await rel.textContent('[data-testid="cycle-status"]'), /Released/)
  const doses = await rel.locator('[data-testid="dose"]').allTextContents()
  assert.deepEqual(doses.map(d => d.trim()).sort(), ['102.6 mg', '1026 mg'])
  assert.deepEqual(await accessibilityProblems(rel), [])
  await screenshot(rel, 'chemo-released')

  // --- the patient declines further treatment: the cycle is cancelled ----------
  await rel.fill('#revoke_reason', 'Patient declined further treatment')
  await Promise.all([
    rel.waitForURL(u => u.searchParams.get('done') === 'revoked'),
    rel.click('[data-testid="revoke"]')
  ])
  assert.match(await rel.textContent('[data-testid="cycle-status"]'), /Cancelled/)
  assert.match(await rel.textContent('[data-testid="revoked"]'), /Patient declined further treatment/)
  assert.equal(await rel.locator('[data-testid="revoke"]').count(), 0)
  await drContext.close()
})
