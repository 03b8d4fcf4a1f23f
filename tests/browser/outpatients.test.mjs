// Outpatient clinics in a real browser (issue 19): headless Chromium
// against a real `wardline serve --demo`, signed in as the consultant
// dr.watford.
//  * A clinic template is defined on the page and its slots generated.
//  * A patient on the outpatient waiting list is booked into a slot from
//    the waiting list, rebooked into another, checked in, and the outcome
//    "add to the admitted list" (day case, P2) is recorded: the clinic list
//    shows them arrived with the outcome; a day-case entry is on the list.
//  * Another patient, booked earlier into a slot already past, did not
//    attend their first appointment: they are discharged to the GP (the
//    entry closed) and a letter to the GP is drafted for the DNA.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'
import { clinicWithSlots } from './clinics.mjs'

const WL = 'https://fhir.wardline.invalid'
let server, chrome, token, doctor

async function fhir (method, path, body) {
  const res = await fetch(`${server.url}/fhir/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
    body: body ? JSON.stringify(body) : undefined
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

async function patient (id, family) {
  await fhir('PUT', `Patient/${id}`, {
    resourceType: 'Patient',
    id,
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
    name: [{ family, given: ['Browser'] }],
    gender: 'female',
    birthDate: '1970-01-01'
  })
}

async function entry (id, pat) {
  await fhir('PUT', `ServiceRequest/${id}`, {
    resourceType: 'ServiceRequest',
    id,
    status: 'active',
    intent: 'plan',
    category: [{ coding: [{ system: `${WL}/CodeSystem/waiting-list`, code: 'outpatient-new' }] }],
    subject: { reference: `Patient/${pat}` },
    performer: [{ reference: doctor }],
    authoredOn: '2026-11-20',
    extension: [{ url: `${WL}/StructureDefinition/treatment-function`, valueCoding: { system: `${WL}/CodeSystem/treatment-function`, code: '100' } }]
  })
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-outpatients', '--name', 'Browser outpatients test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-outpatients', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
  await fhir('PUT', 'Location/browser-opd', { resourceType: 'Location', id: 'browser-opd', status: 'active', name: 'Browser outpatients A' })
  await patient('browser-op-a', 'Admitted')
  await patient('browser-op-b', 'Missed')
  await entry('browser-entry-a', 'browser-op-a')
  await entry('browser-entry-b', 'browser-op-b')
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('booked from the list, rebooked, checked in, added to the admitted list; a first-appointment DNA discharges to the GP', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/clinics')
  const today = new Date().toISOString().slice(0, 10)

  // A clinic every day, all day, 20-minute new-patient slots.
  const clinic = await clinicWithSlots(page, server, { name: 'Browser general surgery clinic', doctor, location: 'browser-opd' })
  assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /slots made/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'outpatients-clinic')

  // Patient A: booked from the waiting list into the first free slot.
  await page.goto(`${server.url}/ui/outpatients`)
  const row = page.locator('[data-testid="waiting-row"][data-entry="browser-entry-a"]')
  assert.equal(await row.count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await row.locator('[data-testid="book"]').click()
  await page.waitForURL(u => u.pathname === '/ui/outpatients' && u.searchParams.get('entry') === 'browser-entry-a')
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.locator('[data-testid="slot-choice"]').first().check()
  await page.click('[data-testid="confirm-book"]')
  await page.waitForURL(u => u.pathname.startsWith('/ui/appointments/') && u.search.includes('done=booked'))
  const first = new URL(page.url()).pathname.replace('/ui/appointments/', '')
  assert.equal(await page.locator('[data-testid="appt-status"]').first().getAttribute('data-status'), 'booked')
  assert.deepEqual(await accessibilityProblems(page), [])

  // Rebooked by the patient into another slot.
  await page.locator('[data-testid="slot-choice"]').nth(1).check()
  await page.check('#by')
  await page.fill('#rebook-reason', 'Patient asked for a later time')
  await page.click('[data-testid="rebook"]')
  await page.waitForURL(u => u.search.includes('done=rebooked'))
  const second = new URL(page.url()).pathname.replace('/ui/appointments/', '')
  assert.notEqual(second, first)
  assert.equal((await fhir('GET', `Appointment/${first}`)).status, 'cancelled')

  // Checked in, then the outcome: add to the admitted (day-case) list, P2.
  await page.click('button:has-text("Check in")')
  await page.waitForURL(u => u.search.includes('done=arrived'))
  await page.check('#outcome-3')
  await page.check('#list-2')
  await page.fill('#procedure', '80146002')
  await page.fill('#procedure-name', 'Appendicectomy')
  await page.check('#priority-2')
  await page.click('[data-testid="record-outcome"]')
  await page.waitForURL(u => u.search.includes('done=outcome'))
  assert.match(await page.locator('[data-testid="appt-outcome"]').innerText(), /day-case list: Appendicectomy \(P2/)
  const appt = await fhir('GET', `Appointment/${second}`)
  assert.equal(appt.status, 'fulfilled')
  const dayCase = await fhir('GET', 'ServiceRequest?subject=Patient/browser-op-a&status=active')
  assert.ok(dayCase.entry.some(e => e.resource.category[0].coding[0].code === 'day-case'), JSON.stringify(dayCase))
  assert.equal((await fhir('GET', 'ServiceRequest/browser-entry-a')).status, 'completed')

  // The clinic list for the day shows them arrived, with the outcome.
  const day = appt.start.slice(0, 10)
  await page.goto(`${server.url}/ui/clinics?clinic=${clinic}&date=${day}`)
  const listed = page.locator(`[data-testid="list-row"][data-appointment="${second}"]`)
  assert.equal(await listed.count(), 1)
  assert.notEqual(await listed.locator('[data-testid="arrived"]').innerText(), '—')
  assert.match(await listed.locator('[data-testid="outcome"]').innerText(), /day-case/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'outpatients-clinic-list')

  // Patient B was booked earlier today into the clinic's first slot, now past.
  const slots = await fhir('GET', `Slot?schedule=Schedule/${clinic}&start=${today}&_sort=start&_count=1`)
  const past = slots.entry[0].resource
  assert.ok(past.start < new Date().toISOString(), 'the first slot of today has started')
  const b = await fhir('POST', 'Appointment', {
    resourceType: 'Appointment',
    status: 'booked',
    slot: [{ reference: `Slot/${past.id}` }],
    start: past.start,
    end: past.end,
    appointmentType: past.appointmentType,
    basedOn: [{ reference: 'ServiceRequest/browser-entry-b' }],
    participant: [
      { actor: { reference: 'Patient/browser-op-b' }, status: 'accepted' },
      { actor: { reference: doctor }, status: 'accepted' },
      { actor: { reference: 'Location/browser-opd' }, status: 'accepted' }
    ]
  })
  const eb = await fhir('GET', 'ServiceRequest/browser-entry-b')
  eb.extension.push({ url: `${WL}/StructureDefinition/booked`, valueReference: { reference: `Appointment/${b.id}` } })
  await fhir('PUT', 'ServiceRequest/browser-entry-b', eb)

  await page.goto(`${server.url}/ui/appointments/${b.id}`)
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.click('[data-testid="dna"]')
  await page.waitForURL(u => u.search.includes('done=dna-discharged'))
  assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /discharged to the GP/)
  assert.equal((await fhir('GET', `Appointment/${b.id}`)).status, 'noshow')
  assert.equal((await fhir('GET', 'ServiceRequest/browser-entry-b')).status, 'completed')
  const letters = await fhir('GET', 'Composition?subject=Patient/browser-op-b')
  assert.equal(letters.entry?.length, 1, JSON.stringify(letters))
  assert.match(JSON.stringify(letters.entry[0].resource), /did not attend/)
  await screenshot(page, 'outpatients-dna')
})
