// The results inbox in a real browser: headless Chromium against a real
// `wardline serve --demo`. A patient and a request by the consultant
// dr.watford are loaded over FHIR REST, then a normal and a critical U&E
// arrive through `POST /fhir/DiagnosticReport/$submit`;
//  * the doctor sees the critical result at the top of the inbox, flagged
//    red "Critical", opens it (potassium "critically high" with its range)
//    and acknowledges it ("filed"); it leaves the inbox;
//  * a second critical result is left alone: `wardline results escalate
//    --now` an hour and a minute after it arrived (the injected clock, not
//    a sleep) escalates it, and it is in the Team queue marked escalated,
//    and in the inbox marked "Escalated to consultant".
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

let server, chrome, page, token, doctor, patient, request

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

function result (accession, value, flag) {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        resource: {
          resourceType: 'DiagnosticReport',
          status: 'final',
          identifier: [{ system: 'https://fhir.wardline.invalid/Id/filler-order', value: accession }],
          basedOn: [{ reference: request }],
          subject: { reference: patient },
          code: { coding: [{ system: 'http://snomed.info/sct', code: '26958001', display: 'Urea and electrolytes' }], text: 'U&E' },
          effectiveDateTime: '2026-03-02T08:30:00Z'
        }
      },
      {
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '2823-3', display: 'Potassium' }] },
          valueQuantity: { value, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
          referenceRange: [{ low: { value: 3.5, unit: 'mmol/L' }, high: { value: 5.3, unit: 'mmol/L' } }],
          interpretation: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag }] }]
        }
      }
    ]
  }
}

/** Submits a result; returns the inbox Task it created. */
async function submit (accession, value, flag) {
  const out = await fhir('POST', 'DiagnosticReport/$submit', result(accession, value, flag))
  const notified = out.parameter.filter(p => p.name === 'notified')
  assert.equal(notified.length, 1, JSON.stringify(out))
  return notified[0].valueReference.reference.replace('Task/', '')
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-results', '--name', 'Browser results test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-results', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const line = server.cli('user', 'list').split('\n').find(l => l.startsWith('dr.watford '))
  doctor = line.split(/\s+/).find(w => w.startsWith('Practitioner/'))
  const p = await fhir('POST', 'Patient', {
    resourceType: 'Patient',
    active: true,
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
    name: [{ use: 'official', family: 'Kalium', given: ['Kara'] }],
    gender: 'female',
    birthDate: '1948-05-17'
  })
  patient = `Patient/${p.id}`
  const sr = await fhir('POST', 'ServiceRequest', {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { text: 'U&E' },
    subject: { reference: patient },
    requester: { reference: doctor },
    authoredOn: '2026-03-02T08:00:00Z'
  })
  request = `ServiceRequest/${sr.id}`
  page = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a critical result is at the top of the inbox, flagged; the doctor opens and acknowledges it', async () => {
  await submit('BR-1', 4.2, 'N')
  const critical = await submit('BR-2', 6.9, 'HH')
  await signIn(page, server, 'dr.watford', '/ui/results')
  const first = page.locator('[data-testid="inbox-row"]').first()
  assert.equal(await first.getAttribute('data-task'), critical)
  assert.equal(await first.getAttribute('data-flag'), 'critical')
  assert.equal((await first.locator('[data-testid="flag"]').innerText()).trim(), 'Critical')
  // Red, as the design system's red tag is.
  const colour = await first.locator('[data-testid="flag"]').evaluate(el => getComputedStyle(el).backgroundColor)
  assert.match(colour, /rgb\(2[0-9]{2}, [0-9]{2,3}, [0-9]{2,3}\)/, colour)
  assert.match(await first.innerText(), /KALIUM, Kara/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'results-inbox')

  await first.locator('[data-testid="open-result"]').click()
  await page.waitForURL(u => u.pathname === `/ui/results/${critical}`)
  const obs = page.locator('[data-testid="observation"]').first()
  assert.match(await obs.innerText(), /6\.9 mmol\/L/)
  assert.match(await obs.innerText(), /3\.5–5\.3 mmol\/L/)
  assert.match(await obs.locator('[data-testid="flag-words"]').innerText(), /HH – critically high/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'results-critical')

  await page.getByLabel('Filed: no action needed').check()
  await page.click('[data-testid="acknowledge"]')
  await page.waitForURL(u => u.pathname === '/ui/results' && u.search.includes('done=acknowledged'))
  assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /Result acknowledged/)
  assert.equal(await page.locator(`[data-testid="inbox-row"][data-task="${critical}"]`).count(), 0)
  const task = await fhir('GET', `Task/${critical}`)
  assert.equal(task.status, 'completed')
  assert.equal(task.output[1].valueReference.reference, doctor)
})

test('an unacknowledged critical result escalates when the clock passes the limit', async () => {
  const critical = await submit('BR-3', 2.1, 'LL')
  const authored = new Date((await fhir('GET', `Task/${critical}`)).authoredOn)
  const at = minutes => new Date(authored.getTime() + minutes * 60_000).toISOString()
  assert.match(server.cli('results', 'escalate', '--now', at(59)), /nothing to escalate/)
  await page.goto(`${server.url}/ui/results?queue=team`)
  assert.equal(await page.locator('[data-testid="inbox-row"]').count(), 0)

  const out = server.cli('results', 'escalate', '--now', at(61))
  assert.equal((out.match(/escalated: Task\//g) || []).length, 1, out)
  await page.goto(`${server.url}/ui/results?queue=team`)
  const row = page.locator('[data-testid="inbox-row"]').first()
  assert.equal(await row.getAttribute('data-state'), 'escalated')
  assert.equal(await row.getAttribute('data-flag'), 'critical')
  await screenshot(page, 'results-team-escalated')
  await page.goto(`${server.url}/ui/results`)
  const mine = page.locator(`[data-testid="inbox-row"][data-task="${critical}"]`)
  assert.match(await mine.innerText(), /Escalated to consultant/)
  await mine.locator('[data-testid="open-result"]').click()
  assert.match(await page.locator('[data-testid="escalated"]').innerText(), /escalated to the responsible consultant/)
})
