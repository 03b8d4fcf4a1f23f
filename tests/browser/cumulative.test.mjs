// The cumulative results view and the unmatched-results worklist in a real
// browser: headless Chromium against a real `wardline serve --demo`. A
// patient with an open laboratory request by dr.watford and four creatinine
// results (one critical) is loaded over FHIR REST, plus a result nobody
// could match; then
//  * dr.watford opens the patient's Results from the chart: the table has a
//    creatinine row, and the trend chart is an SVG with one point per
//    result, the critical one marked, inside the chart's viewBox;
//  * bms.lab opens the unmatched worklist, sees what the sender said,
//    matches the result to the patient's order, and it leaves the worklist;
//  * back on the results page the chart has a fifth point.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

const PATIENT = 'browser-cum-' + Math.random().toString(36).slice(2, 8)
const ORDER = `${PATIENT}-sr`
const NHS = newNhsNumber()
const LOINC = 'http://loinc.org'

let server, chrome, doctor, lab, token, reportId

async function fhir (method, path, body) {
  const res = await fetch(`${server.url}/fhir/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
    body: body && JSON.stringify(body)
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

function obs (at, value, interpretation) {
  const o = {
    resourceType: 'Observation', status: 'final',
    code: { coding: [{ system: LOINC, code: '2160-0', display: 'Creatinine' }] },
    effectiveDateTime: at,
    valueQuantity: { value, unit: 'umol/L', system: 'http://unitsofmeasure.org', code: 'umol/L' },
    referenceRange: [{ low: { value: 59 }, high: { value: 104 } }]
  }
  if (interpretation) o.interpretation = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: interpretation }] }]
  return o
}

async function submit (report, observations) {
  const out = await fhir('POST', 'DiagnosticReport/$submit', {
    resourceType: 'Bundle', type: 'collection',
    entry: [report, ...observations].map(resource => ({ resource }))
  })
  const p = name => out.parameter.find(x => x.name === name)
  return { matched: p('matched').valueBoolean, report: p('report').valueReference.reference.split('/')[1] }
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  doctor = await (await chrome.browser.newContext()).newPage()
  lab = await (await chrome.browser.newContext()).newPage()
  server.cli('client', 'add', 'browser-cum', '--name', 'Browser cumulative test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-cum', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const found = await fhir('GET', `Practitioner?identifier=${encodeURIComponent('https://fhir.wardline.invalid/Id/username|dr.watford')}`)
  const dr = found.entry[0].resource.id
  await fhir('PUT', `Patient/${PATIENT}`, {
    resourceType: 'Patient', id: PATIENT, active: true,
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: NHS }],
    name: [{ use: 'official', family: 'Nimbus', given: ['Cora'] }], gender: 'female', birthDate: '1949-04-02'
  })
  await fhir('PUT', `ServiceRequest/${ORDER}`, {
    resourceType: 'ServiceRequest', id: ORDER, status: 'active', intent: 'order',
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '108252007' }] }],
    code: { text: 'Urea and electrolytes' },
    identifier: [{ system: 'https://fhir.wardline.invalid/Id/placer-order', value: `R-${PATIENT}` }],
    subject: { reference: `Patient/${PATIENT}` },
    requester: { reference: `Practitioner/${dr}` },
    authoredOn: '2026-01-01T09:00:00Z'
  })
  const values = [['2026-01-05T09:00:00Z', 82, 'N'], ['2026-02-05T09:00:00Z', 97, 'N'], ['2026-03-05T09:00:00Z', 150, 'H'], ['2026-04-05T09:00:00Z', 540, 'HH']]
  for (const [i, [at, v, flag]] of values.entries()) {
    const r = await submit({
      resourceType: 'DiagnosticReport', status: 'final',
      identifier: [{ system: 'https://fhir.wardline.invalid/Id/filler-order', value: `${PATIENT}-L${i}` }],
      code: { text: 'Urea and electrolytes' }, effectiveDateTime: at, issued: at,
      subject: { reference: `Patient/${PATIENT}` }, basedOn: [{ reference: `ServiceRequest/${ORDER}` }]
    }, [obs(at, v, flag)])
    assert.equal(r.matched, true)
  }
  const u = await submit({
    resourceType: 'DiagnosticReport', status: 'final',
    identifier: [{ system: 'https://fhir.wardline.invalid/Id/filler-order', value: `${PATIENT}-LU` }],
    code: { text: 'Urea and electrolytes' }, issued: '2026-04-20T10:00:00Z',
    contained: [{
      resourceType: 'Patient', id: 'reported-patient',
      identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: NHS }],
      name: [{ family: 'NIMBUS', given: ['CORA'] }], birthDate: '1949-04-02'
    }],
    extension: [
      { url: 'https://fhir.wardline.invalid/StructureDefinition/reported-patient', valueReference: { reference: '#reported-patient' } },
      { url: 'https://fhir.wardline.invalid/StructureDefinition/unmatched-reason', valueString: 'no placer order number was sent' }
    ]
  }, [obs('2026-04-20T08:00:00Z', 130, 'H')])
  assert.equal(u.matched, false)
  reportId = u.report
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

/** The trend chart's points as the browser laid them out. */
async function points (page) {
  return page.evaluate(() => {
    const svg = document.querySelector('[data-testid="trend-chart"]')
    const vb = svg.viewBox.baseVal
    return [...svg.querySelectorAll('[data-testid="trend-point"]')].map(c => ({
      flag: c.getAttribute('data-flag'),
      x: c.cx.baseVal.value,
      y: c.cy.baseVal.value,
      inside: c.cx.baseVal.value >= vb.x && c.cx.baseVal.value <= vb.x + vb.width &&
        c.cy.baseVal.value >= vb.y && c.cy.baseVal.value <= vb.y + vb.height
    }))
  })
}

test('the doctor opens the patient\'s results: a table and a trend chart with a point per result', async () => {
  await signIn(doctor, server, 'dr.watford', `/ui/patients/${PATIENT}`)
  await doctor.click('[data-testid="results-link"] a')
  await doctor.waitForURL(u => u.pathname === `/ui/patients/${PATIENT}/results`)
  const row = doctor.locator('[data-testid="analyte-row"]', { hasText: 'Creatinine' })
  assert.equal(await row.count(), 1)
  assert.match(await row.textContent(), /59–104/)
  assert.match(await row.locator('[data-flag="HH"]').textContent(), /540/)
  const pts = await points(doctor)
  assert.equal(pts.length, 4, 'one point per result')
  assert.ok(pts.every(p => p.inside), 'every point inside the viewBox')
  assert.deepEqual(pts.map(p => p.flag), ['', '', 'H', 'HH'])
  // Oldest on the left; the critical value highest.
  assert.ok(pts[0].x < pts[3].x)
  assert.ok(pts[3].y < pts[0].y)
  assert.equal(await doctor.locator('[data-testid="trend-range"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(doctor), [])
  await screenshot(doctor, 'cumulative-results')
})

test('the laboratory matches the unmatched result to the patient\'s order', async () => {
  await signIn(lab, server, 'bms.lab', '/ui/results/unmatched')
  const item = lab.locator(`[data-testid="unmatched-item"][data-report="${reportId}"]`)
  assert.match(await item.textContent(), /NIMBUS, CORA.*no placer order number was sent/s)
  await item.locator('a:has-text("Match")').click()
  await lab.waitForURL(u => u.pathname === `/ui/results/unmatched/${reportId}`)
  const candidate = lab.locator(`[data-testid="candidate"][data-patient="${PATIENT}"]`)
  assert.match(await candidate.textContent(), /NHS number matches/)
  assert.deepEqual(await accessibilityProblems(lab), [])
  await screenshot(lab, 'unmatched-match')
  await candidate.locator(`input[name="order"][value="${ORDER}"]`).check()
  await candidate.locator('[data-testid="match-button"]').click()
  await lab.waitForURL(u => u.pathname === '/ui/results/unmatched')
  assert.match(await lab.textContent('body'), /filed to the patient/)
  assert.equal(await lab.locator(`[data-testid="unmatched-item"][data-report="${reportId}"]`).count(), 0)
})

test('the matched result joins the chart and the doctor\'s inbox', async () => {
  await doctor.goto(`${server.url}/ui/patients/${PATIENT}/results`)
  assert.equal((await points(doctor)).length, 5)
  await doctor.goto(`${server.url}/ui/results`)
  assert.equal(await doctor.locator(`[data-testid="inbox-row"][data-report="${reportId}"]`).count(), 1)
})
