// Discharge summaries in a real browser: headless Chromium against a real
// `wardline serve --demo`. A diagnosis of an in-patient on watford-w1 is
// loaded over FHIR REST; the consultant dr.watford
//  * opens the patient's chart and follows "Discharge summary" from the
//    current stay, starts it, and finds the diagnosis pre-filled;
//  * writes the clinical summary and the plan, saves, previews, signs;
//  * opens the PDF, which a PDF reader (pdftotext) reads back with the
//    edited heading and the patient's NHS number.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, patient, encounter

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
  server.cli('client', 'add', 'browser-discharge', '--name', 'Browser discharge test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-discharge', '--scope', 'system/*.cruds', '--minutes', '60').trim()

  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  const encs = await fhir('GET', `Encounter?patient=Patient/${patient}&status=in-progress`)
  encounter = encs.entry.map(e => e.resource).find(e => e.class.code === 'IMP').id
  await page.context().close()

  await fhir('PUT', 'Condition/browser-dx', {
    resourceType: 'Condition',
    id: 'browser-dx',
    code: { coding: [{ system: 'http://snomed.info/sct', code: '195967001', display: 'Asthma' }, { system: 'http://hl7.org/fhir/sid/icd-10', code: 'J45.9' }] },
    subject: { reference: `Patient/${patient}` },
    encounter: { reference: `Encounter/${encounter}` }
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a doctor opens the pre-filled summary, edits a heading, signs and opens the PDF', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', `/ui/patients/${patient}`)
  await page.locator('[data-testid="current-stay"] ~ .wl-actions [data-testid="discharge-summary"], [data-testid="discharge-summary"]').first().click()
  await page.waitForURL(u => u.pathname === `/ui/encounters/${encounter}/discharge-summary` || u.pathname.startsWith('/ui/discharge-summaries/'))
  if (await page.locator('[data-testid="start-summary"]').count() > 0) {
    assert.deepEqual(await accessibilityProblems(page), [])
    await page.click('[data-testid="start-summary"]')
    await page.waitForURL(u => u.pathname.endsWith('/edit'))
  } else {
    await page.click('[data-testid="edit"]')
    await page.waitForURL(u => u.pathname.endsWith('/edit'))
  }
  const id = new URL(page.url()).pathname.split('/')[3]
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'discharge-edit')

  // Signing without a plan: the error summary links to the field.
  await page.getByLabel('Clinical summary').fill('Admitted with an exacerbation of asthma; nebulisers and oral steroids.')
  await page.click('[data-testid="save"]')
  await page.waitForURL(u => u.pathname === `/ui/discharge-summaries/${id}`)
  await page.click('[data-testid="sign"]')
  const summaryError = page.locator('.nhsuk-error-summary a[href="#plan"]')
  assert.equal(await summaryError.count(), 1)

  // Edit the plan, preview, sign.
  await page.click('[data-testid="edit"]')
  await page.waitForURL(u => u.pathname.endsWith('/edit'))
  await page.getByLabel('Plan and requested actions').fill('GP: please review the inhaler technique in two weeks.')
  await page.click('[data-testid="save"]')
  await page.waitForURL(u => u.pathname === `/ui/discharge-summaries/${id}` && u.search.includes('done=saved'))
  const diagnoses = page.locator('[data-testid="heading"][data-key="diagnoses"]')
  assert.match(await diagnoses.innerText(), /Asthma \(SNOMED CT 195967001; ICD-10 J45\.9\)/)
  const plan = page.locator('[data-testid="heading"][data-key="plan"]')
  assert.match(await plan.innerText(), /inhaler technique in two weeks/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'discharge-preview')
  await page.click('[data-testid="sign"]')
  await page.waitForURL(u => u.search.includes('done=signed'))
  assert.equal(await page.locator('[data-testid="summary-status"]').getAttribute('data-status'), 'final')
  assert.match(await page.locator('[data-testid="heading"][data-key="person-completing-record"]').innerText(), /Role: /)
  await screenshot(page, 'discharge-signed')

  // The PDF, read back by a PDF reader.
  const href = await page.locator('[data-testid="pdf"]').getAttribute('href')
  const res = await page.request.get(`${server.url}${href}`)
  assert.equal(res.status(), 200)
  assert.equal(res.headers()['content-type'], 'application/pdf')
  const dir = mkdtempSync(join(tmpdir(), 'wardline-discharge-'))
  const file = join(dir, 'summary.pdf')
  writeFileSync(file, await res.body())
  const text = execFileSync('pdftotext', [file, '-']).toString().split(/\s+/).join(' ')
  assert.match(text, /Plan and requested actions/)
  assert.match(text, /inhaler technique in two weeks/)
  assert.match(text, /Asthma/)
  const p = await fhir('GET', `Patient/${patient}`)
  const nhs = p.identifier.find(i => i.system === 'https://fhir.nhs.uk/Id/nhs-number').value
  assert.ok(text.includes(nhs), 'the NHS number is on the PDF')
})
