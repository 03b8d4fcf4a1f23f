// Planned care end to end (issue 19), in a real browser against a real
// `wardline serve --demo`, through the pages each person uses:
//  * a GP system sends a referral over FHIR; the consultant triages it
//    urgent: the pathway's clock starts on the day received (RTT 10) and the
//    patient is on the outpatient (new) list;
//  * a clinic is set up; the patient is booked from the list into a slot,
//    rebooked at their request, checked in, and the outcome "add to the
//    admitted list" is recorded (RTT 20);
//  * a theatre session is planned and the case added from the admitted list;
//    on the day, knife to skin is refused until the WHO checklist's time out
//    is complete; the operation is recorded as first definitive treatment:
//    the clock stops on the day of the operation (RTT 30);
//  * a second referred patient does not attend their first appointment: they
//    are discharged back to the GP (RTT 33, the clock nullified) with a
//    letter drafted to the GP.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'
import { clinicWithSlots } from './clinics.mjs'

const W = 'https://fhir.wardline.invalid'
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

/** The patient's open waiting-list entry on `list`. */
async function entryOn (patient, list) {
  const b = await fhir('GET', `ServiceRequest?subject=Patient/${patient}&status=active`)
  const found = (b.entry || []).map(e => e.resource)
    .filter(r => (r.category || []).some(c => c.coding?.some(x => x.system === `${W}/CodeSystem/waiting-list` && x.code === list)))
  assert.equal(found.length, 1, `${patient} on ${list}: ${JSON.stringify(b)}`)
  return found[0]
}

/** The RTT status codes recorded on a pathway, in order, with their dates. */
function events (pathway) {
  return (pathway.extension || [])
    .filter(e => e.url === `${W}/StructureDefinition/rtt-event`)
    .map(e => {
      const part = n => e.extension.find(x => x.url === n)
      return [part('status').valueCoding.code, part('date').valueDate]
    })
}

async function referral (id, family) {
  await fhir('PUT', `Patient/${id}`, {
    resourceType: 'Patient',
    id,
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
    name: [{ family, given: ['Journey'] }],
    gender: 'female',
    birthDate: '1961-05-17'
  })
  return fhir('POST', 'ServiceRequest', {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    category: [{ coding: [{ system: 'https://fhir.nhs.uk/CodeSystem/message-category-servicerequest', code: 'referral', display: 'Transfer of Care' }] }],
    priority: 'urgent',
    subject: { reference: `Patient/${id}` },
    requester: { display: 'Dr A Green, Riverside Surgery (E82001)' },
    performer: [{ reference: doctor }],
    reasonCode: [{ text: 'Recurrent right iliac fossa pain' }]
  })
}

async function triage (page, sr, priority) {
  await page.goto(`${server.url}/ui/referrals/triage`)
  await page.locator(`[data-testid="triage"] [data-referral="${sr.id}"] [data-testid="triage-open"]`).click()
  await page.waitForURL(u => u.pathname === `/ui/referrals/${sr.id}/triage`)
  await page.getByLabel(priority, { exact: true }).check()
  await page.selectOption('#specialty', '100')
  await page.click('[data-testid="accept"]')
  await page.waitForURL(u => /^\/ui\/rtt\/pathways\/[^/]+$/.test(u.pathname))
  return new URL(page.url()).pathname.replace('/ui/rtt/pathways/', '')
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-journey', '--name', 'Browser journey (a GP system)', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-journey', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
  await fhir('PUT', 'Location/journey-opd', { resourceType: 'Location', id: 'journey-opd', status: 'active', name: 'Journey outpatients' })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('referral, triage, clinic, theatre and the RTT clock; a first-appointment DNA goes back to the GP', async () => {
  const today = new Date().toISOString().slice(0, 10)
  const [y, m, d] = today.split('-')
  const srA = await referral('journey-a', 'Treated')
  const srB = await referral('journey-b', 'Missed')

  // Triage: urgent; the clock starts on the day received.
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/referrals/triage')
  const pathwayA = await triage(page, srA, 'Urgent')
  assert.equal(await page.locator('[data-testid="clock"]').getAttribute('data-clock'), 'running')
  const pathwayB = await triage(page, srB, 'Routine')
  assert.deepEqual(events(await fhir('GET', `EpisodeOfCare/${pathwayA}`)), [['10', today]])
  const newA = await entryOn('journey-a', 'outpatient-new')
  assert.equal(newA.priority, 'urgent')

  // A general surgery clinic every day, 20-minute new-patient slots.
  const clinic = await clinicWithSlots(page, server, { name: 'Journey general surgery clinic', doctor, location: 'journey-opd' })

  // Booked from the waiting list, rebooked at the patient's request.
  await page.goto(`${server.url}/ui/outpatients`)
  await page.locator(`[data-testid="waiting-row"][data-entry="${newA.id}"] [data-testid="book"]`).click()
  await page.locator('[data-testid="slot-choice"]').first().check()
  await page.click('[data-testid="confirm-book"]')
  await page.waitForURL(u => u.pathname.startsWith('/ui/appointments/') && u.search.includes('done=booked'))
  const first = new URL(page.url()).pathname.replace('/ui/appointments/', '')
  await page.locator('[data-testid="slot-choice"]').nth(1).check()
  await page.check('#by')
  await page.fill('#rebook-reason', 'Patient asked for a later time')
  await page.click('[data-testid="rebook"]')
  await page.waitForURL(u => u.search.includes('done=rebooked'))
  const second = new URL(page.url()).pathname.replace('/ui/appointments/', '')
  assert.notEqual(second, first)
  assert.equal((await fhir('GET', `Appointment/${first}`)).status, 'cancelled')

  // Attended: the outcome is "add to the admitted (day-case) list".
  await page.click('button:has-text("Check in")')
  await page.waitForURL(u => u.search.includes('done=arrived'))
  await page.check('#outcome-3')
  await page.check('#list-2')
  await page.fill('#procedure', '80146002')
  await page.fill('#procedure-name', 'Appendicectomy')
  await page.check('#priority-2')
  await page.click('[data-testid="record-outcome"]')
  await page.waitForURL(u => u.search.includes('done=outcome'))
  assert.deepEqual(events(await fhir('GET', `EpisodeOfCare/${pathwayA}`)).map(e => e[0]), ['10', '20'])
  const dayCase = await entryOn('journey-a', 'day-case')
  await screenshot(page, 'journey-outcome')

  // A theatre session today; the case added from the admitted list.
  await page.goto(`${server.url}/ui/theatres`)
  await page.selectOption('#theatre', 'watford-th1')
  await page.selectOption('#specialty', '100')
  await page.selectOption('#surgeon', doctor.replace('Practitioner/', ''))
  await page.fill('#day-day', d)
  await page.fill('#day-month', m)
  await page.fill('#day-year', y)
  await page.fill('#start', '08:00')
  await page.fill('#end', '18:00')
  await page.click('[data-testid="plan-session"]')
  await page.waitForURL(/\/ui\/theatres\/sessions\//)
  await page.check(`input[data-testid="waiting-entry"][value="${dayCase.id}"]`)
  await page.click('[data-testid="add-case"]')
  await page.waitForURL(/done=added/)
  await page.click('[data-testid="open-case"]')
  await page.waitForURL(/\/ui\/theatres\/cases\//)
  assert.deepEqual(await accessibilityProblems(page), [])

  const summary = page.locator('.nhsuk-error-summary')
  const step = async (name) => {
    assert.equal(await page.getAttribute('[data-testid="next-step"]', 'data-step'), name)
    await page.click('[data-testid="next-step"]')
  }
  const tick = async (part) => {
    const boxes = page.locator(`section[data-part="${part}"] input[type="checkbox"]`)
    for (let i = 0; i < await boxes.count(); i++) await boxes.nth(i).check()
    await page.click(`section[data-part="${part}"] [data-testid="tick"]`)
    await page.waitForSelector(`section[data-part="${part}"][data-complete="true"]`)
  }
  await step('sent-for')
  await step('anaesthetic-room')
  await tick('sign-in')
  // Time out skipped: knife to skin is refused and not recorded.
  await step('knife-to-skin')
  await summary.waitFor()
  assert.match(await summary.innerText(), /time out is not complete/)
  await screenshot(page, 'journey-time-out-refused')
  await tick('time-out')
  await step('knife-to-skin')
  await page.waitForURL(/done=step/)
  await step('closed')
  await page.waitForURL(/done=step/)
  await tick('sign-out')
  await step('recovery')
  await page.waitForURL(/done=step/)
  await page.click('[data-testid="record-operation"]')
  await page.waitForURL(/done=operation/)

  // The clock stopped on the day of the operation, with the codes in order.
  const pwA = await fhir('GET', `EpisodeOfCare/${pathwayA}`)
  assert.equal(pwA.status, 'finished')
  assert.equal(pwA.period.start, today)
  assert.equal(pwA.period.end, today)
  assert.deepEqual(events(pwA).map(e => e[0]), ['10', '20', '30'])
  assert.equal(events(pwA)[2][1], today)
  assert.equal((await fhir('GET', `ServiceRequest/${dayCase.id}`)).status, 'completed')
  await page.goto(`${server.url}/ui/rtt/pathways/${pathwayA}`)
  assert.notEqual(await page.locator('[data-testid="clock"]').getAttribute('data-clock'), 'running')
  await screenshot(page, 'journey-clock-stopped')

  // Patient B: booked into today's first slot, already past; did not attend.
  const newB = await entryOn('journey-b', 'outpatient-new')
  const slots = await fhir('GET', `Slot?schedule=Schedule/${clinic}&start=${today}&_sort=start&_count=1`)
  const past = slots.entry[0].resource
  const appt = await fhir('POST', 'Appointment', {
    resourceType: 'Appointment',
    status: 'booked',
    slot: [{ reference: `Slot/${past.id}` }],
    start: past.start,
    end: past.end,
    appointmentType: past.appointmentType,
    basedOn: [{ reference: `ServiceRequest/${newB.id}` }],
    participant: [
      { actor: { reference: 'Patient/journey-b' }, status: 'accepted' },
      { actor: { reference: doctor }, status: 'accepted' },
      { actor: { reference: 'Location/journey-opd' }, status: 'accepted' }
    ]
  })
  newB.extension = [...(newB.extension || []), { url: `${W}/StructureDefinition/booked`, valueReference: { reference: `Appointment/${appt.id}` } }]
  await fhir('PUT', `ServiceRequest/${newB.id}`, newB)
  await page.goto(`${server.url}/ui/appointments/${appt.id}`)
  await page.click('[data-testid="dna"]')
  await page.waitForURL(u => u.search.includes('done=dna-discharged'))
  assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /discharged to the GP/)
  const pwB = await fhir('GET', `EpisodeOfCare/${pathwayB}`)
  assert.deepEqual(events(pwB).map(e => e[0]), ['10', '33'])
  assert.notEqual(pwB.status, 'active')
  const letters = await fhir('GET', 'Composition?subject=Patient/journey-b')
  assert.match(JSON.stringify(letters), /did not attend/)
  await screenshot(page, 'journey-dna')
  await page.context().close()
})
