// The pathology laboratory in a real browser: headless Chromium against a
// real `wardline serve --demo`. The demo order catalogue and a requisition
// by dr.watford (a U&E request and its tube, in the shape the requesting
// pages write) are loaded over FHIR REST; then
//  * bms.lab types the tube's barcode into the reception box (it has the
//    focus, as a scanner needs) and Enter: the page names the patient to
//    check against the label;
//  * bms.lab enters the U&E with a potassium of 7.1 mmol/L (critical) and
//    validates it;
//  * cs.lab authorises it: the report is final, the potassium flagged
//    "Critical high" in red;
//  * dr.watford's results inbox has it at the top, flagged critical.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SUFFIX = Math.random().toString(36).slice(2, 8)
const PATIENT = 'browser-lab-' + SUFFIX
const REQUISITION = 'R8' + String(Math.floor(Math.random() * 1e6)).padStart(6, '0')
const BARCODE = `${REQUISITION}-1`

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

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-lab', '--name', 'Browser laboratory test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-lab', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const catalogue = JSON.parse(readFileSync(join(ROOT, 'crates/wardline-demo/data/order-catalogue.json'), 'utf8'))
  await fhir('POST', '', catalogue)
  const ue = catalogue.entry.map(e => e.resource).find(r => r.id === 'path-ue')
  const doctor = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford'))
  const requester = doctor.split('Practitioner/')[1].trim()
  const subject = { reference: `Patient/${PATIENT}` }
  await fhir('POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        resourceType: 'Patient', id: PATIENT, active: true,
        identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
        name: [{ use: 'official', family: 'Quayle', given: ['Edith'] }], gender: 'female', birthDate: '1944-03-09'
      },
      {
        resourceType: 'ServiceRequest', id: `${PATIENT}-ue`, status: 'active', intent: 'order', priority: 'urgent',
        identifier: [{ system: 'https://fhir.wardline.invalid/Id/placer-order', value: `${REQUISITION}-1` }],
        requisition: { system: 'https://fhir.wardline.invalid/Id/requisition', value: REQUISITION },
        category: [{ coding: [{ system: 'http://snomed.info/sct', code: '108252007', display: 'Laboratory procedure' }] }],
        code: ue.code, instantiatesCanonical: [ue.url], subject,
        requester: { reference: `Practitioner/${requester}`, display: 'Sanjay Mehta' },
        authoredOn: new Date().toISOString(), note: [{ text: 'Weakness; on spironolactone' }]
      },
      {
        resourceType: 'Specimen', id: `${PATIENT}-tube`, status: 'available',
        identifier: [{ system: 'https://fhir.wardline.invalid/Id/specimen', value: BARCODE }],
        type: { coding: [{ system: 'http://snomed.info/sct', code: '119364003', display: 'Serum specimen' }] },
        container: [{ type: { text: 'Serum separator (gold top)' } }],
        subject, request: [{ reference: `ServiceRequest/${PATIENT}-ue` }]
      }
    ].map(r => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } }))
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('the laboratory receives, enters, validates and authorises a critical result', async () => {
  // --- bms.lab: reception by the barcode, then the bench -------------------
  const bmsContext = await chrome.browser.newContext()
  const bms = await bmsContext.newPage()
  await signIn(bms, server, 'bms.lab', '/ui/lab')
  assert.deepEqual(await accessibilityProblems(bms), [])
  // The scan box has the focus: a scanner types the number and Enter.
  assert.equal(await bms.evaluate(() => document.activeElement?.id), 'barcode')
  await bms.keyboard.type(BARCODE)
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('received') === BARCODE),
    bms.keyboard.press('Enter')
  ])
  assert.match(await bms.textContent('[data-testid="received-patient"]'), /QUAYLE, Edith/)
  await screenshot(bms, 'lab-received')

  const href = await bms.getAttribute('[data-testid="received"] a', 'href')
  assert.match(href, /^\/ui\/lab\/reports\//)
  await bms.goto(server.url + href)
  const report = new URL(bms.url()).pathname
  const values = { Sodium: '137', Potassium: '7.1', Urea: '6.2', Creatinine: '70', 'eGFR (CKD-EPI)': '75' }
  for (const [analyte, value] of Object.entries(values)) {
    await bms.fill(`tr[data-analyte="${analyte}"] input`, value)
  }
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('done') === 'entered'),
    bms.click('button:has-text("Save results")')
  ])
  const potassium = bms.locator('tr[data-analyte="Potassium"] [data-testid="flag"] strong')
  assert.equal((await potassium.textContent()).trim(), 'Critical high')
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('done') === 'validated'),
    bms.click('button:has-text("Validate")')
  ])
  assert.match(await bms.textContent('[data-testid="report-status"]'), /validated by bms\.lab/)
  // bms.lab has no authorise button of use: the validator may not authorise.
  await Promise.all([
    bms.waitForURL(/\/authorise$/),
    bms.click('button:has-text("Authorise and release")')
  ])
  assert.match(await bms.textContent('main'), /a different person must authorise/)
  await bmsContext.close()

  // --- cs.lab: authorisation ----------------------------------------------
  const csContext = await chrome.browser.newContext()
  const cs = await csContext.newPage()
  await signIn(cs, server, 'cs.lab', report)
  await Promise.all([
    cs.waitForURL(u => u.searchParams.get('done') === 'authorised'),
    cs.click('button:has-text("Authorise and release")')
  ])
  assert.match(await cs.textContent('[data-testid="report-status"]'), /^final .*authorised by cs\.lab/)
  const flag = cs.locator('tr[data-analyte="Potassium"] [data-testid="flag"] strong')
  assert.equal((await flag.textContent()).trim(), 'Critical high')
  assert.match(await flag.getAttribute('class'), /nhsuk-tag--red/)
  assert.equal(await cs.locator('button:has-text("Authorise and release")').count(), 0, 'authorised once')
  assert.deepEqual(await accessibilityProblems(cs), [])
  await screenshot(cs, 'lab-authorised')
  await csContext.close()

  // --- the requester's inbox: critical, at the top --------------------------
  const docContext = await chrome.browser.newContext()
  const doc = await docContext.newPage()
  await signIn(doc, server, 'dr.watford', '/ui/results')
  const first = doc.locator('[data-testid="inbox-row"]').first()
  const text = await first.textContent()
  assert.match(text, /QUAYLE/, text)
  assert.match(text, /Critical/, text)
  assert.equal(await first.getAttribute('data-flag'), 'critical')
  await screenshot(doc, 'lab-inbox')
  await docContext.close()
})
