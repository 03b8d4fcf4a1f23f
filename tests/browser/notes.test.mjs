// Clinical notes in a real browser: headless Chromium against a real
// `wardline serve --demo`. The consultant dr.watford, for an in-patient on
// ward watford-w1:
//  * opens the notes from the chart, writes a ward round note by heading
//    and saves it as a draft;
//  * signs it; amends it with a reason, and sees both versions (the signed
//    original kept, with what changed);
//  * adds a coded diagnosis from the picking list (SNOMED CT with ICD-10),
//    stored as a Condition of the admission.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token

async function fhir (method, path) {
  const res = await fetch(`${server.url}/fhir/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json' }
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-notes', '--name', 'Browser notes test', '--scope', 'system/*.rs')
  token = server.cli('token', '--client', 'browser-notes', '--scope', 'system/*.rs', '--minutes', '60').trim()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a doctor writes, signs and amends a ward round note, sees both versions and codes a diagnosis', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  const patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')

  await page.goto(`${server.url}/ui/patients/${patient}`)
  await page.locator('[data-testid="notes-link"] a').click()
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/notes`)
  await page.click('[data-testid="new-ward-round"]')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/notes/new`)
  assert.deepEqual(await accessibilityProblems(page), [])

  // Nothing written: the error summary links to the first heading.
  await page.click('[data-testid="save-draft"]')
  await page.locator('.nhsuk-error-summary a[href="#presenting-complaint"]').waitFor()

  await page.getByLabel('Presenting complaint').fill('Short of breath for two days')
  await page.getByLabel('Examination').fill('Bibasal crackles, SpO2 91% on air')
  await page.getByLabel('Impression').fill('Community acquired pneumonia')
  await page.getByLabel('Plan').fill('IV co-amoxiclav\nRepeat chest X-ray')
  await page.click('[data-testid="save-draft"]')
  await page.waitForURL(u => u.pathname.startsWith('/ui/notes/'))
  const id = new URL(page.url()).pathname.replace('/ui/notes/', '')
  assert.equal(await page.locator('[data-testid="note-status"]').getAttribute('data-status'), 'preliminary')
  assert.deepEqual(await accessibilityProblems(page), [])

  await page.click('[data-testid="sign"]')
  await page.waitForURL(u => u.search.includes('done=signed'))
  assert.equal(await page.locator('h1 [data-testid="note-status"]').getAttribute('data-status'), 'final')

  // Amend: the form holds the signed text.
  await page.click('[data-testid="amend-open"]')
  assert.equal(await page.getByLabel('Plan').inputValue(), 'IV co-amoxiclav\nRepeat chest X-ray')
  await page.getByLabel('Plan').fill('Oral amoxicillin\nRepeat chest X-ray')
  await page.getByLabel('Reason for the amendment').fill('Penicillin-based IV not needed: switched to oral')
  await page.click('[data-testid="amend"]')
  await page.waitForURL(u => u.search.includes('done=amended'))
  assert.equal(await page.locator('h1 [data-testid="note-status"]').getAttribute('data-status'), 'amended')
  assert.match(await page.locator('[data-testid="note-reason"]').innerText(), /switched to oral/)
  assert.match(await page.locator('[data-testid="note-text"]').innerText(), /Oral amoxicillin/)

  // Both versions: the signed original (kept) and the amendment.
  const versions = page.locator('[data-testid="version"]')
  assert.equal(await versions.count(), 3)
  const signed = page.locator('[data-testid="version"][data-status="final"]')
  await signed.locator('summary').click()
  assert.match(await signed.innerText(), /IV co-amoxiclav/)
  const amended = page.locator('[data-testid="version"][data-status="amended"]')
  await amended.locator('summary').click()
  assert.match(await amended.locator('[data-testid="version-changed"]').innerText(), /Plan/)
  assert.match(await amended.innerText(), /Oral amoxicillin/)
  await screenshot(page, 'notes-versions')

  // A coded diagnosis from the picking list.
  await page.selectOption('#snomed', '385093006')
  await page.click('[data-testid="add-entry"]')
  await page.waitForURL(u => u.search.includes('done=entry'))
  const row = page.locator('[data-testid="entry"]')
  assert.equal(await row.count(), 1)
  assert.equal(await row.locator('[data-testid="classification"]').innerText(), 'J18.9')
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'notes-coded-diagnosis')

  const ref = await row.getAttribute('data-reference')
  const cond = await fhir('GET', ref)
  const note = await fhir('GET', `Composition/${id}`)
  assert.deepEqual(cond.encounter, note.encounter)
  assert.equal(cond.code.coding[0].system, 'http://snomed.info/sct')
  assert.equal(cond.code.coding[1].system, 'http://hl7.org/fhir/sid/icd-10')
  assert.ok(note.section.some(s => (s.entry || []).some(e => e.reference === ref)), 'the note references the diagnosis')
})
