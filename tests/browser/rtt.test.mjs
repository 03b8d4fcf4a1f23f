// Referral to treatment in a real browser: headless Chromium against a real
// `wardline serve --demo`.
//  * A GP system POSTs an e-Referral-shaped ServiceRequest over FHIR to the
//    consultant dr.watford; it is on the triage worklist;
//  * dr.watford triages it: accepting without a priority is refused with an
//    error summary linking to the field; accepted urgent, the pathway's
//    clock runs from the date received (status 10);
//  * the ward clerk finds the patient on the outpatient (new) list as
//    urgent; the PTL shows the pathway and counts it;
//  * the validation worklist: an entry with no pathway is listed and
//    marked validated (it stays listed for its missing pathway, its last
//    validation recorded).
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, doctor

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
  server.cli('client', 'add', 'browser-rtt', '--name', 'Browser RTT test (a GP system)', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-rtt', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a GP referral triaged urgent goes on the list and the PTL; the validation worklist', async () => {
  await fhir('PUT', 'Patient/browser-rtt-1', {
    resourceType: 'Patient', id: 'browser-rtt-1', name: [{ family: 'Pathway', given: ['Petra'] }], gender: 'female', birthDate: '1958-02-11'
  })
  const sr = await fhir('POST', 'ServiceRequest', {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    category: [{ coding: [{ system: 'https://fhir.nhs.uk/CodeSystem/message-category-servicerequest', code: 'referral', display: 'Transfer of Care' }] }],
    priority: 'urgent',
    subject: { reference: 'Patient/browser-rtt-1' },
    requester: { display: 'Dr A Green, Riverside Surgery (E82001)' },
    performer: [{ reference: doctor }],
    reasonCode: [{ text: 'Rapidly enlarging neck lump' }]
  })

  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/referrals/triage')
  const row = page.locator(`[data-testid="triage"] [data-referral="${sr.id}"]`)
  assert.equal(await row.count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await row.locator('[data-testid="triage-open"]').click()
  await page.waitForURL(u => u.pathname === `/ui/referrals/${sr.id}/triage`)
  await page.selectOption('#specialty', '120')
  await page.click('[data-testid="accept"]')
  await page.locator('.nhsuk-error-summary a[href="#priority"]').waitFor()
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByLabel('Urgent', { exact: true }).check()
  await page.selectOption('#specialty', '120')
  await page.click('[data-testid="accept"]')
  await page.waitForURL(u => /^\/ui\/rtt\/pathways\/[^/]+$/.test(u.pathname))
  const pathway = new URL(page.url()).pathname.replace('/ui/rtt/pathways/', '')
  assert.equal(await page.locator('[data-testid="clock"]').getAttribute('data-clock'), 'running')
  assert.equal(await page.locator('[data-testid="event"]').first().getAttribute('data-status'), '10')
  assert.equal(await page.locator('[data-testid="weeks"]').innerText(), '0')
  await screenshot(page, 'rtt-pathway')

  // The ward clerk: on the outpatient (new) list, urgent.
  const clerk = await (await chrome.browser.newContext()).newPage()
  await signIn(clerk, server, 'clerk.watford', '/ui/waiting-lists?list=outpatient-new')
  const entry = clerk.locator('[data-testid="entry-row"][data-priority="urgent"]').filter({ hasText: 'Ear Nose and Throat' })
  assert.equal(await entry.count(), 1)
  assert.deepEqual(await accessibilityProblems(clerk), [])
  await screenshot(clerk, 'rtt-waiting-list')

  // The PTL shows the pathway.
  await page.goto(`${server.url}/ui/rtt/ptl?specialty=120`)
  assert.equal(await page.locator(`[data-testid="ptl-row"][data-pathway="${pathway}"]`).count(), 1)
  assert.equal(await page.locator('[data-testid="open-total"]').innerText(), '1')
  assert.equal(await page.locator('[data-testid="ptl-chart"] svg').count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'rtt-ptl')

  // Validation: an entry added with no pathway is on the worklist.
  await page.goto(`${server.url}/ui/patients/browser-rtt-1/waiting-lists/new`)
  await page.getByLabel('Outpatient (follow-up)').check()
  await page.selectOption('#specialty', '120')
  await page.selectOption('#priority', 'routine')
  const d = new Date()
  await page.fill('#decided-day', String(d.getUTCDate()))
  await page.fill('#decided-month', String(d.getUTCMonth() + 1))
  await page.fill('#decided-year', String(d.getUTCFullYear()))
  await page.click('[data-testid="add-entry"]')
  await page.waitForURL(u => /^\/ui\/waiting-lists\/entries\/[^/]+$/.test(u.pathname))
  const lone = new URL(page.url()).pathname.replace('/ui/waiting-lists/entries/', '')
  await clerk.goto(`${server.url}/ui/waiting-lists/validation`)
  const v = clerk.locator(`[data-testid="validation-row"][data-entry="${lone}"]`)
  assert.equal(await v.locator('[data-problem="no-pathway"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(clerk), [])
  await screenshot(clerk, 'rtt-validation')
  await v.locator('[data-testid="validate"]').click()
  await clerk.waitForURL(u => u.pathname === `/ui/waiting-lists/entries/${lone}`)
  assert.match(await clerk.locator('[data-testid="entry"]').innerText(), /Last validated\s+\d/)
})
