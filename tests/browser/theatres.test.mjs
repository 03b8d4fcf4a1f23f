// Theatres in a real browser: headless Chromium against a real
// `wardline serve --demo`. An inpatient waiting-list entry (on an RTT
// pathway whose clock runs) is loaded over FHIR REST; then dr.watford
//  * plans a session in Theatre 1 today and is refused a second,
//    overlapping session in Theatre 2 (error summary naming the surgeon);
//  * adds the entry to the list (default estimate shown as a default);
//  * records the day: knife to skin is refused until the WHO checklist's
//    time out is complete (error summary), leaving theatre until sign out;
//  * records the operation as first definitive treatment: the pathway's
//    clock stops on the day (RTT 30) and the entry leaves the list;
//  * sees the utilisation figures and chart.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, surgeon, patient, entry

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

const W = 'https://fhir.wardline.invalid'

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-theatres', '--name', 'Browser theatres test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-theatres', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  surgeon = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
  patient = (await fhir('GET', 'Patient?_count=1')).entry[0].resource.id
  await fhir('PUT', 'EpisodeOfCare/browser-pw', {
    resourceType: 'EpisodeOfCare',
    id: 'browser-pw',
    status: 'active',
    identifier: [{ system: `${W}/rtt-pathway`, value: 'BROWSERTHEATRE1' }],
    type: [{ coding: [{ system: `${W}/CodeSystem/episode-type`, code: 'rtt' }] }],
    patient: { reference: `Patient/${patient}` },
    period: { start: '2026-10-01' },
    extension: [
      { url: `${W}/StructureDefinition/treatment-function`, valueCoding: { system: `${W}/CodeSystem/treatment-function`, code: '110' } },
      {
        url: `${W}/StructureDefinition/rtt-event`,
        extension: [
          { url: 'status', valueCoding: { system: `${W}/CodeSystem/rtt-status`, code: '10' } },
          { url: 'date', valueDate: '2026-10-01' },
          { url: 'source', valueReference: { reference: `Patient/${patient}` } }
        ]
      }
    ]
  })
  entry = (await fhir('POST', 'ServiceRequest', {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'plan',
    category: [{ coding: [{ system: `${W}/CodeSystem/waiting-list`, code: 'inpatient' }] }],
    priority: 'urgent',
    code: { coding: [{ system: 'http://snomed.info/sct', code: '52734007', display: 'Primary hip replacement' }], text: 'Primary hip replacement' },
    subject: { reference: `Patient/${patient}` },
    authoredOn: '2026-11-02',
    performer: [{ reference: surgeon }],
    supportingInfo: [{ reference: 'EpisodeOfCare/browser-pw' }],
    extension: [
      { url: `${W}/StructureDefinition/treatment-function`, valueCoding: { system: `${W}/CodeSystem/treatment-function`, code: '110' } },
      { url: `${W}/StructureDefinition/waiting-priority`, valueCoding: { system: `${W}/CodeSystem/waiting-priority`, code: 'P3' } }
    ]
  })).id
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function planSession (page, theatre, start, end) {
  const today = new Date().toISOString().slice(0, 10).split('-')
  await page.goto(`${server.url}/ui/theatres`)
  await page.selectOption('#theatre', theatre)
  await page.selectOption('#specialty', '110')
  await page.selectOption('#surgeon', surgeon.replace('Practitioner/', ''))
  await page.fill('#day-day', today[2])
  await page.fill('#day-month', today[1])
  await page.fill('#day-year', today[0])
  await page.fill('#start', start)
  await page.fill('#end', end)
  await page.click('[data-testid="plan-session"]')
}

async function tick (page, part) {
  const boxes = page.locator(`section[data-part="${part}"] input[type="checkbox"]`)
  for (let i = 0; i < await boxes.count(); i++) await boxes.nth(i).check()
  await page.click(`section[data-part="${part}"] [data-testid="tick"]`)
  await page.waitForSelector(`section[data-part="${part}"][data-complete="true"]`)
}

async function nextStep (page, step) {
  assert.equal(await page.getAttribute('[data-testid="next-step"]', 'data-step'), step)
  await page.click('[data-testid="next-step"]')
}

test('a theatre list from the waiting list, the WHO checklist blocking knife to skin, the operation stopping the clock', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/theatres')

  await planSession(page, 'watford-th1', '08:00', '12:00')
  await page.waitForURL(/\/ui\/theatres\/sessions\//)
  const sessionUrl = page.url().split('?')[0]
  assert.deepEqual(await accessibilityProblems(page), [])

  await planSession(page, 'watford-th2', '10:00', '13:00')
  const summary = page.locator('.nhsuk-error-summary')
  await summary.waitFor()
  assert.match(await summary.innerText(), /two theatres at once/)
  assert.equal(await page.locator('.nhsuk-error-summary a[href="#surgeon"]').count(), 1)

  await page.goto(sessionUrl)
  await page.check(`input[data-testid="waiting-entry"][value="${entry}"]`)
  await page.click('[data-testid="add-case"]')
  await page.waitForURL(/done=added/)
  assert.match(await page.locator('[data-testid="estimate"]').first().innerText(), /60 min[\s\S]*default/)
  await screenshot(page, 'theatres-list')
  await page.click('[data-testid="open-case"]')
  await page.waitForURL(/\/ui\/theatres\/cases\//)
  assert.deepEqual(await accessibilityProblems(page), [])

  await nextStep(page, 'sent-for')
  await nextStep(page, 'anaesthetic-room')
  await tick(page, 'sign-in')
  // Skipping time out: knife to skin refused, shown, not recorded.
  await nextStep(page, 'knife-to-skin')
  await summary.waitFor()
  assert.match(await summary.innerText(), /time out is not complete/)
  assert.equal(await page.locator('tr[data-step="knife-to-skin"] [data-testid="step-time"]').innerText(), '—')
  await screenshot(page, 'theatres-time-out-refused')
  await tick(page, 'time-out')
  await nextStep(page, 'knife-to-skin')
  await page.waitForURL(/done=step/)
  await nextStep(page, 'closed')
  await page.waitForURL(/done=step/)
  await nextStep(page, 'recovery')
  await summary.waitFor()
  assert.match(await summary.innerText(), /sign out is not complete/)
  await tick(page, 'sign-out')
  await nextStep(page, 'recovery')
  await page.waitForURL(/done=step/)
  assert.match(await page.locator('[data-testid="ticked-by"]').first().innerText(), /Ticked by/)

  await page.click('[data-testid="record-operation"]')
  await page.waitForURL(/done=operation/)
  await page.locator('[data-testid="operation-recorded"]').waitFor()
  const pw = await fhir('GET', 'EpisodeOfCare/browser-pw')
  assert.equal(pw.status, 'finished')
  const appt = await fhir('GET', `Appointment/${page.url().split('/cases/')[1].split('?')[0]}`)
  const knife = appt.extension.flatMap(e => e.extension || []).find(e => e.url === 'knife-to-skin').valueDateTime
  assert.equal(pw.period.end, knife.slice(0, 10))
  assert.ok(JSON.stringify(pw).includes('"code":"30"'))
  assert.equal((await fhir('GET', `ServiceRequest/${entry}`)).status, 'completed')

  await page.goto(`${server.url}/ui/theatres/utilisation`)
  await page.locator('[data-testid="chart"]').waitFor()
  assert.equal(await page.locator('[data-testid="figure-row"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'theatres-utilisation')
  await page.context().close()
})
