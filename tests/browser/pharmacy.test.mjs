// The pharmacist's screening in a real browser: headless Chromium against a
// real `wardline serve --demo`. A prescription signed by the consultant
// dr.watford for an in-patient on ward watford-w1 is loaded over FHIR REST;
//  * pharm.watford finds it on the screening worklist (filtered to the
//    ward), opens it, screens it with a note; it leaves the worklist;
//  * on the patient's drug chart it shows as screened.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, doctor, patient, encounter, rx

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
  server.cli('client', 'add', 'browser-pharmacy', '--name', 'Browser pharmacy test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-pharmacy', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))

  // An in-patient on watford-w1, from the ward board.
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  const encs = await fhir('GET', `Encounter?patient=Patient/${patient}&status=in-progress`)
  encounter = encs.entry.map(e => e.resource).find(e => e.class.code === 'IMP').id
  await page.context().close()

  await fhir('PUT', 'Medication/med-browser-para', {
    resourceType: 'Medication',
    id: 'med-browser-para',
    status: 'active',
    code: { coding: [{ system: 'https://fhir.wardline.invalid/CodeSystem/local-medicine', code: 'BRPARA500', display: 'Paracetamol 500mg tablets (browser test)' }] }
  })
  const mr = await fhir('POST', 'MedicationRequest', {
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-category', code: 'inpatient' }] }],
    medicationReference: { reference: 'Medication/med-browser-para', display: 'Paracetamol 500mg tablets (browser test)' },
    subject: { reference: `Patient/${patient}` },
    encounter: { reference: `Encounter/${encounter}` },
    requester: { reference: doctor },
    authoredOn: '2026-03-02T08:00:00Z',
    reasonCode: [{ text: 'Pain' }],
    extension: [{
      url: 'https://fhir.wardline.invalid/StructureDefinition/prescriber-signature',
      extension: [{ url: 'by', valueReference: { reference: doctor } }, { url: 'at', valueDateTime: '2026-03-02T08:00:00Z' }]
    }],
    dosageInstruction: [{ text: '1 g four times a day' }]
  })
  rx = mr.id
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a pharmacist screens a prescription from the worklist and the chart shows it screened', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'pharm.watford', '/ui/pharmacy')
  await page.selectOption('#ward', 'watford-w1')
  await page.getByRole('button', { name: 'Show' }).click()
  await page.waitForURL(u => u.pathname === '/ui/pharmacy' && u.search.includes('ward=watford-w1'))
  const row = page.locator(`[data-testid="worklist-row"][data-prescription="${rx}"]`)
  assert.equal(await row.count(), 1)
  assert.equal(await row.getAttribute('data-screening'), 'unscreened')
  assert.match(await row.innerText(), /1 g four times a day/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'pharmacy-worklist')

  await row.locator('[data-testid="open-prescription"]').click()
  await page.waitForURL(u => u.pathname === `/ui/pharmacy/prescriptions/${rx}`)
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByLabel('Note (optional)').fill('Dose checked against weight and renal function.')
  await page.click('[data-testid="screen"]')
  await page.waitForURL(u => u.pathname === '/ui/pharmacy' && u.search.includes('done=screened'))
  assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /Prescription screened/)
  assert.equal(await page.locator(`[data-testid="worklist-row"][data-prescription="${rx}"]`).count(), 0)

  const stored = await fhir('GET', `MedicationRequest/${rx}`)
  const screening = stored.extension.find(e => e.url === 'https://fhir.wardline.invalid/StructureDefinition/pharmacy-screening')
  assert.equal(screening.extension.find(e => e.url === 'status').valueCode, 'screened')

  // The drug chart, as the consultant sees it.
  const dr = await (await chrome.browser.newContext()).newPage()
  await signIn(dr, server, 'dr.watford', `/ui/patients/${patient}/medicines`)
  const tags = dr.locator('[data-testid="screening"][data-screening="screened"]')
  assert.ok(await tags.count() >= 1, 'the chart shows the prescription screened')
  await screenshot(dr, 'pharmacy-chart-screened')
})
