// Transfers of care in a real browser: headless Chromium against a real
// `wardline serve --demo`.
//  * A discharge 30 hours ago (loaded over FHIR REST, the consultant
//    dr.watford) with no summary sent: `wardline transfers overdue` raises
//    the overdue Task; the compliance dashboard shows it in the overdue
//    list, on dr.watford's team list, and in the ward and specialty figures
//    (with their bar charts).
//  * The administrator sets a practice's delivery routes: a wrong email
//    address is refused with an error summary linking to the field; a MESH
//    mailbox and an email, MESH first, are saved and listed in that order.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, doctor, patient

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
  server.cli('client', 'add', 'browser-transfers', '--name', 'Browser transfers test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-transfers', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  await page.context().close()
  // An earlier admission of theirs, discharged 30 hours ago: the clock is
  // moved by dating the discharge, not by waiting.
  const end = new Date(Date.now() - 30 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
  await fhir('PUT', 'Encounter/browser-xfer-e1', {
    resourceType: 'Encounter',
    id: 'browser-xfer-e1',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: `Patient/${patient}` },
    participant: [{
      type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'ATND' }] }],
      individual: { reference: doctor }
    }],
    serviceType: { coding: [{ system: 'https://fhir.nhs.uk/CodeSystem/UKCore-TreatmentFunction', code: '300', display: 'General Internal Medicine' }] },
    location: [{ location: { reference: 'Location/watford-w1' }, status: 'completed' }],
    period: { start: '2026-11-01T09:00:00Z', end }
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a missed 24-hour summary is on the dashboard and the consultant team list', async () => {
  const out = server.cli('transfers', 'overdue')
  assert.match(out, /overdue: Task\//)
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/transfers')
  const row = page.locator('[data-testid="overdue-row"][data-encounter="Encounter/browser-xfer-e1"]')
  assert.equal(await row.count(), 1)
  assert.match(await row.innerText(), /General Internal Medicine/)
  assert.match(await page.locator('[data-testid="team-tasks"]').innerText(), /not been sent to the GP practice within 24 hours/)
  assert.match(await page.locator('[data-testid="total-overdue"]').innerText(), /[1-9]\d* overdue/)
  assert.equal(await page.locator('[data-testid="chart-ward"] svg').count(), 1)
  assert.equal(await page.locator('[data-testid="chart-specialty"] svg').count(), 1)
  const spec = page.locator('[data-testid="by-specialty"] tr[data-name="General Internal Medicine"] [data-testid="group-overdue"]')
  assert.equal(await spec.innerText(), '1')
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'transfers-dashboard')
})

test('an administrator sets a practice delivery routes, with errors shown at the field', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'admin', '/ui/transfers/routing')
  const practice = page.locator('[data-testid="practice"][data-practice="gp-e82003"]')
  assert.match(await practice.locator('[data-testid="routes"]').innerText(), /^Email e82003\.gp@nhs\.net$/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await practice.locator('[data-testid="change-routes"]').click()
  await page.waitForURL(u => u.pathname === '/ui/transfers/routing/gp-e82003')
  await page.getByLabel('MESH mailbox id').fill('X26ABC3')
  await page.getByLabel('Email address').fill('not an address')
  await page.click('[data-testid="save-routes"]')
  const summary = page.locator('.nhsuk-error-summary')
  assert.match(await summary.innerText(), /email: enter the practice's email address/)
  assert.equal(await summary.locator('a').getAttribute('href'), '#email')
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByLabel('Email address').fill('e82003.gp@nhs.net')
  await page.getByLabel('MESH', { exact: true }).check()
  await page.click('[data-testid="save-routes"]')
  await page.waitForURL(u => u.pathname === '/ui/transfers/routing' && u.search.includes('done=1'))
  const routes = page.locator('[data-testid="practice"][data-practice="gp-e82003"] [data-testid="routes"]')
  assert.equal(await routes.innerText(), 'MESH X26ABC3, then Email e82003.gp@nhs.net')
  await screenshot(page, 'transfers-routing')
  const org = await fhir('GET', 'Organization/gp-e82003')
  assert.deepEqual(org.endpoint.map(e => e.reference), ['Endpoint/gp-e82003-mesh', 'Endpoint/gp-e82003-email'])
})
