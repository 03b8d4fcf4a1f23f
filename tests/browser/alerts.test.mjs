// Clinical alerts (issue 20) in a real browser: headless Chromium against
// a real `wardline serve --demo`.
//  * dr.watford records a CP-IS flag (child protection plan) for an
//    in-patient on watford-w1 through the alerts page (a first attempt
//    without the local authority's ODS code shows the error summary); the
//    flag is then in the banner of EVERY patient page for that patient —
//    each route of the UI that is about one patient or one of their
//    admissions (listed below) is visited and its banner checked;
//  * a Mental Health Act section 5(2) is recorded from now; with the
//    server's clock moved by `wardline alerts remind --now` (no sleep) 59
//    hours on nothing is raised, 61 hours on the reminder is raised (12
//    hours before the 72-hour expiry) and shown on the patient's alerts
//    page, owned by the ward, due at the expiry.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, page, patient, encounter

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
  server.cli('client', 'add', 'browser-alerts', '--name', 'Browser alerts test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-alerts', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.split('/')[3]).find(id => id && id !== 'new' && !id.includes('?'))
  assert.ok(patient, 'an in-patient on watford-w1')
  const found = await fhir('GET', `Encounter?patient=Patient/${patient}&status=in-progress`)
  encounter = found.entry.map(e => e.resource).find(e => e.class?.code === 'IMP').id
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('a CP-IS flag is shown in the banner on every page for that patient', async () => {
  await page.goto(`${server.url}/ui/patients/${patient}/alerts`)
  const form = page.locator('[data-testid="cpis-form"]')
  await form.locator('#plan_type').selectOption('CPP')
  await form.locator('#start-day').fill('10')
  await form.locator('#start-month').fill('1')
  await form.locator('#start-year').fill('2026')
  await form.locator('#la_name').fill('Hertfordshire County Council')
  await form.locator('#la_phone').fill('0300 123 4043')
  await page.click('[data-testid="record-cpis"]')
  // The ODS code was left out: the error summary links to the field.
  const summary = page.locator('.nhsuk-error-summary')
  assert.match(await summary.innerText(), /ODS code/)
  assert.equal(await summary.locator('a').getAttribute('href'), '#la_ods')
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.locator('[data-testid="cpis-form"] #la_ods').fill('A1B2C')
  await page.click('[data-testid="record-cpis"]')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/alerts` && u.search.includes('done=cpis'))

  // Every patient page route of the UI (GET routes naming the patient or
  // one of their admissions), from `wardline_web::ROUTES`.
  const p = `/ui/patients/${patient}`
  const e = `/ui/encounters/${encounter}`
  const pages = [
    p, `${p}/alerts`, `${p}/order`, `${p}/results`, `${p}/medicines`, `${p}/medicines/new`,
    `${p}/mar`, `${p}/chemotherapy`, `${p}/notes`, `${p}/notes/new?kind=ward-round`,
    `${p}/clinic-letters`, `${p}/referrals`, `${p}/referrals/new`, `${p}/referrals/in/new`,
    `${p}/pathways`, `${p}/waiting-lists/new`, `${p}/consent`,
    `${e}/transfer`, `${e}/discharge`, `${e}/discharge-medicines`, `${e}/social-care`
  ]
  const missing = []
  for (const path of pages) {
    const r = await page.goto(`${server.url}${path}`)
    const flag = page.locator('[data-testid="patient-banner"] [data-testid="banner-cpis"]')
    if (r.status() !== 200 || await flag.count() !== 1 || !/Child protection plan/.test(await flag.innerText())) {
      missing.push(`${path} (${r.status()})`)
    }
  }
  assert.deepEqual(missing, [], 'pages without the CP-IS flag in their banner')
  await page.goto(`${server.url}${p}/notes`)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'alerts-cpis-banner')
})

test('an MHA section 5(2) reminder is raised before expiry when the clock passes 60 hours', async () => {
  await page.goto(`${server.url}/ui/patients/${patient}/alerts`)
  const form = page.locator('[data-testid="mha-form"]')
  await form.locator('#section').selectOption('5(2)')
  await form.locator('#ward').fill('Location/watford-w1')
  await page.click('[data-testid="record-mha"]')
  await page.waitForURL(u => u.search.includes('done=mha'))
  const tag = page.locator('[data-testid="patient-banner"] [data-testid="banner-mha"]')
  assert.equal(await tag.getAttribute('data-section'), 'Section 5(2)')
  assert.match(await tag.innerText(), /MHA Section 5\(2\): expires .* \(in (2 days 23 h|3 days 0 h)\)/)
  const expiry = new Date(await tag.getAttribute('data-expiry'))
  const card = page.locator('[data-testid="mha-card"][data-active="true"]')
  const flag = await card.getAttribute('data-flag')
  const start = new Date((await fhir('GET', `Flag/${flag}`)).period.start)
  assert.equal(expiry.getTime() - start.getTime(), 72 * 3600_000, '5(2) is 72 hours')
  const at = hours => new Date(start.getTime() + hours * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z')

  assert.match(server.cli('alerts', 'remind', '--now', at(59)), /no reminders due/)
  await page.reload()
  assert.equal(await page.locator('[data-testid="mha-reminder"]').count(), 0)

  const out = server.cli('alerts', 'remind', '--now', at(61))
  const task = out.match(/reminder: Task\/(\S+)/)?.[1]
  assert.ok(task, out)
  await page.reload()
  const reminder = page.locator(`[data-testid="mha-reminder"][data-task="${task}"]`)
  assert.match(await reminder.innerText(), /section 5\(2\) expires/)
  assert.equal(await reminder.getAttribute('data-priority'), 'urgent')
  const t = await fhir('GET', `Task/${task}`)
  assert.equal(t.owner.reference, 'Location/watford-w1')
  assert.equal(new Date(t.restriction.period.end).getTime(), expiry.getTime())
  assert.equal(t.code.coding[0].code, 'mha-expiry')
  assert.match(server.cli('alerts', 'remind', '--now', at(62)), /no reminders due/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'alerts-mha-reminder')
})

test('an allergy recorded, verified and refuted: the banner counts it only while it stands', async () => {
  await page.goto(`${server.url}/ui/patients/${patient}/alerts`)
  const before = await page.locator('[data-testid="patient-banner"] [data-testid="banner-allergies"]').getAttribute('data-count')
  const count = () => page.locator('[data-testid="patient-banner"] [data-testid="banner-allergies"]').getAttribute('data-count')
  const n = Number.isNaN(Number(before)) ? 0 : Number(before)
  const form = page.locator('[data-testid="allergy-form"]')
  await form.locator('#substance').fill('Sticking plaster adhesive')
  await form.locator('#reaction').fill('Blistering')
  await form.locator('#criticality').selectOption('high')
  await page.click('[data-testid="record-allergy"]')
  await page.waitForURL(u => u.search.includes('done=allergy'))
  assert.equal(await count(), String(n + 1))
  const row = page.locator('[data-testid="allergy-row"]', { hasText: 'Sticking plaster adhesive' })
  assert.equal(await row.getAttribute('data-verification'), 'unconfirmed')
  assert.equal(await row.locator('[data-testid="free-text"]').count(), 1)
  await row.getByRole('button', { name: 'Verify' }).click()
  await page.waitForURL(u => u.search.includes('done=verified'))
  assert.equal(await page.locator('[data-testid="allergy-row"]', { hasText: 'Sticking plaster adhesive' }).getAttribute('data-verification'), 'confirmed')
  // Refuting needs a reason: the error summary links to it.
  const refute = page.locator('[data-testid="allergy-row"]', { hasText: 'Sticking plaster adhesive' })
  const allergy = await refute.getAttribute('data-allergy')
  await refute.getByRole('button', { name: 'Refute' }).click()
  // The field is the row's own (one refute form a row).
  assert.equal(await page.locator('.nhsuk-error-summary a').getAttribute('href'), `#reason-${allergy}`)
  const again = page.locator('[data-testid="allergy-row"]', { hasText: 'Sticking plaster adhesive' })
  await again.locator(`#reason-${allergy}`).fill('Patch test negative')
  await again.getByRole('button', { name: 'Refute' }).click()
  await page.waitForURL(u => u.search.includes('done=refuted'))
  const refuted = page.locator('[data-testid="allergy-row"]', { hasText: 'Sticking plaster adhesive' })
  assert.equal(await refuted.getAttribute('data-verification'), 'refuted')
  assert.equal(await refuted.getAttribute('data-in-force'), 'false')
  assert.equal(Number.isNaN(Number(await count())) ? 0 : Number(await count()), n)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'alerts-allergy-refuted')
})
