// The Emergency Department in a real browser: headless Chromium against a
// real `wardline serve --demo`. A patient is loaded over FHIR REST; then
//  * the server's clinical clock is injected (`--clock-offset-file`) and
//    set to 10:12 today; the ward clerk records an ambulance arrival at
//    10:00 (found by NHS number, incident reference, handover at 10:10);
//  * dr.watford sees the patient on the board within 4 hours; the clock is
//    moved on to 13:35 and the row turns amber ("approaching 4 hours");
//    the doctor triages (category 2 with its discriminator), streams to
//    majors, takes the patient, refers to cardiology (a Task in the
//    shared shape, owned by the cardiology team) — all shown on the board;
//  * the clock is moved past 14:00: the row is a 4-hour breach, counted;
//  * a decision to admit admits the patient through ADT: the patient
//    leaves the board, the attendance is finished with destination
//    "Discharge to ward" and an inpatient admission is in progress.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

let server, chrome, token, patient, nhs

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

// The attendance's arrival: 10:00 UTC today (mid-morning on the London
// wall clock, whatever the time the test runs).
const today = new Date()
const T0 = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 10, 0)
const MIN = 60_000

// "HH:MM" on the London wall clock, `minutes` after T0.
function wallClock (minutes) {
  return new Date(T0 + minutes * MIN)
    .toLocaleTimeString('en-GB', { timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', hour12: false })
}

before(async () => {
  server = await startServer({ clock: true })
  server.setClock(T0 + 12 * MIN + 30_000)
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-ed', '--name', 'Browser ED test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-ed', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  nhs = newNhsNumber()
  patient = (await fhir('POST', 'Patient', {
    resourceType: 'Patient',
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhs }],
    name: [{ use: 'official', family: 'Ambulance', given: ['Ada'] }],
    gender: 'female',
    birthDate: '1951-04-02'
  })).id
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('an ambulance arrival is triaged, tracked past the 4-hour warning, referred and admitted through ADT', async () => {
  // The clerk records the arrival.
  const clerk = await (await chrome.browser.newContext()).newPage()
  await signIn(clerk, server, 'clerk.watford', '/ui/ed')
  await clerk.click('[data-testid="record-arrival"]')
  await clerk.fill('#q', nhs)
  await clerk.click('[data-testid="find-patient"]')
  await clerk.click(`[data-testid="choose-patient"][data-patient="${patient}"]`)
  await clerk.waitForURL(u => u.searchParams.get('patient') === patient)
  // A refusal first: an ambulance arrival without its incident reference.
  await clerk.selectOption('#mode', '1048031000000100')
  await clerk.fill('#arrived', wallClock(0))
  await clerk.click('[data-testid="arrive"]')
  const summary = clerk.locator('.nhsuk-error-summary')
  assert.match(await summary.innerText(), /ambulance incident reference/)
  assert.equal(await summary.locator('a').getAttribute('href'), '#ambulance_incident')
  await clerk.fill('#ambulance_incident', 'INC-20-4471')
  await clerk.fill('#handover', wallClock(10))
  await clerk.selectOption('#complaint', '29857009')
  await clerk.click('[data-testid="arrive"]')
  await clerk.waitForURL(u => u.pathname.startsWith('/ui/ed/attendances/') && u.search.includes('done=arrived'))
  const attendance = new URL(clerk.url()).pathname.replace('/ui/ed/attendances/', '')
  assert.equal(await clerk.locator('[data-testid="status"]').innerText(), 'arrived')
  assert.equal(await clerk.locator('[data-testid="save-triage"]').count(), 0, 'a clerk does not triage')
  assert.deepEqual(await accessibilityProblems(clerk), [])

  // The doctor sees the patient on the board, within 4 hours …
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/ed')
  const row = page.locator(`[data-testid="ed-row"][data-attendance="${attendance}"]`)
  assert.equal(await row.getAttribute('data-clock'), 'within')
  assert.match(await row.locator('[data-testid="in-department"]').innerText(), /^0 h 1[2-3] m$/)
  // … and, the clock moved on to 3 h 35 after arrival, amber: past 3 h 30.
  server.setClock(T0 + 215 * MIN + 30_000)
  await page.reload()
  assert.equal(await row.getAttribute('data-clock'), 'amber')
  assert.match(await row.locator('[data-testid="in-department"]').innerText(), /^3 h 3[5-6] m$/)
  assert.match(await row.innerText(), /AMBULANCE, Ada/)
  assert.equal(await row.locator('[data-testid="triage"]').innerText(), 'Not triaged')
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'ed-board-amber')

  // Triage, stream, take, refer.
  await row.locator('[data-testid="open-attendance"]').click()
  await page.waitForURL(u => u.pathname === `/ui/ed/attendances/${attendance}`)
  await page.click('[data-testid="save-triage"]')
  assert.match(await page.locator('.nhsuk-error-summary').innerText(), /triage category/)
  await page.check('#category-2')
  await page.fill('#discriminator', 'Cardiac pain')
  await page.click('[data-testid="save-triage"]')
  await page.waitForURL(u => u.search.includes('done=triage'))
  await page.check('#stream-2')
  await page.click('[data-testid="save-stream"]')
  await page.waitForURL(u => u.search.includes('done=stream'))
  assert.equal(await page.locator('[data-testid="where"]').innerText(), 'Majors')
  await page.click('[data-testid="see"]')
  await page.waitForURL(u => u.search.includes('done=see'))
  assert.match(await page.locator('[data-testid="clinician"]').innerText(), /Sanjay Mehta/)
  await page.selectOption('#specialty', '320')
  await page.fill('#note', 'Troponin raised')
  await page.click('[data-testid="refer"]')
  await page.waitForURL(u => u.search.includes('done=refer'))
  assert.deepEqual(await accessibilityProblems(page), [])

  const tasks = await fhir('GET', `Task?patient=Patient/${patient}&code=https://fhir.wardline.invalid/CodeSystem/task-kind|ed-specialty-review`)
  assert.equal(tasks.entry.length, 1)
  const task = tasks.entry[0].resource
  assert.equal(task.status, 'requested')
  assert.match(task.owner.reference, /^CareTeam\//)
  assert.equal(task.owner.display, 'Cardiology team, Watford General Hospital')
  assert.ok(task.restriction.period.end > task.authoredOn)

  await page.goto(`${server.url}/ui/ed`)
  const tracked = page.locator(`[data-testid="ed-row"][data-attendance="${attendance}"]`)
  assert.equal(await tracked.getAttribute('data-clock'), 'amber')
  assert.equal(await tracked.locator('[data-testid="place"]').innerText(), 'Majors')
  assert.equal(await tracked.locator('[data-testid="triage"]').getAttribute('data-triage'), '2')
  assert.match(await tracked.locator('[data-testid="referrals"]').innerText(), /Cardiology/)
  assert.match(await tracked.locator('[data-testid="waiting-for"]').innerText(), /Specialty review/)
  assert.match(await tracked.locator('[data-testid="clinician"]').innerText(), /Sanjay Mehta/)
  await screenshot(page, 'ed-board-triaged-referred')

  // Past 4 hours: a breach, counted in the board's summary.
  server.setClock(T0 + 245 * MIN)
  await page.reload()
  assert.equal(await tracked.getAttribute('data-clock'), 'breached')
  assert.equal(await tracked.locator('[data-testid="clock"]').innerText(), '4-hour breach')
  assert.ok(Number(await page.locator('[data-testid="count-breached"]').innerText()) >= 1)

  // Decision to admit: through ADT; off the board.
  await tracked.locator('[data-testid="open-attendance"]').click()
  await page.waitForURL(u => u.pathname === `/ui/ed/attendances/${attendance}`)
  const bed = await page.locator('#bed option').nth(1).getAttribute('value')
  await page.selectOption('#bed', bed)
  await page.selectOption('#admit_specialty', '320')
  await page.fill('#placement_reason', 'Only bed available for a cardiac patient')
  await page.click('[data-testid="admit"]')
  await page.waitForURL(u => u.pathname === '/ui/ed' && u.search.includes('admitted='))
  assert.equal(await page.locator(`[data-testid="ed-row"][data-attendance="${attendance}"]`).count(), 0)
  const enc = await fhir('GET', `Encounter/${attendance}`)
  assert.equal(enc.status, 'finished')
  assert.equal(enc.hospitalization.dischargeDisposition.coding[0].code, '306706006')
  const admitted = await fhir('GET', `Encounter?patient=Patient/${patient}&class=IMP&status=in-progress`)
  assert.equal(admitted.entry.length, 1)
  assert.equal(admitted.entry[0].resource.location[0].location.reference, `Location/${bed}`)
  await screenshot(page, 'ed-board-admitted')
})
