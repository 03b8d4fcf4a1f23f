// Configurable forms in a real browser (issue 20): headless Chromium
// against a real `wardline serve --demo`.
//  * The administrator defines a form on the page (a required yes/no, a
//    follow-up asked only on "no", a score extracted as an observation)
//    and makes it active. Its KPI (completed within 6 hours of admission)
//    is a Measure written over FHIR by a system client.
//  * A nurse opens an admitted patient's record, chooses the form, answers
//    "no", sees the follow-up appear, is stopped by the error summary when
//    it is left empty, completes it.
//  * The KPI page counts the admission as completed in time.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber } from './harness.mjs'

const WL = 'https://fhir.wardline.invalid'
let server, chrome, token, admin, nurse

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

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-forms', '--name', 'Browser forms test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-forms', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  admin = await (await chrome.browser.newContext()).newPage()
  nurse = await (await chrome.browser.newContext()).newPage()
  // A patient admitted to watford-w1 an hour ago (as ADT writes it).
  await fhir('PUT', 'Patient/browser-forms-p', {
    resourceType: 'Patient',
    id: 'browser-forms-p',
    identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: newNhsNumber() }],
    name: [{ family: 'Skinner', given: ['Browser'] }],
    gender: 'female',
    birthDate: '1938-02-11'
  })
  const start = new Date(Date.now() - 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
  await fhir('PUT', 'Encounter/browser-forms-e', {
    resourceType: 'Encounter',
    id: 'browser-forms-e',
    status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: 'Patient/browser-forms-p' },
    period: { start },
    location: [{ location: { reference: 'Location/watford-w1' }, status: 'active' }]
  })
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function addItem (count, fields) {
  for (const [name, value] of Object.entries(fields)) {
    if (name === 'kind' || name === 'enable_operator') await admin.selectOption(`select[name="${name}"]`, value)
    else if (name === 'required') await admin.check('#required')
    else await admin.fill(`[name="${name}"]`, value)
  }
  await admin.click('[data-testid="add-item-button"]')
  await admin.waitForFunction(n => document.querySelectorAll('[data-testid="item-row"]').length === n, count)
}

test('a form defined by an administrator, completed by a nurse, its KPI counted', async () => {
  await signIn(admin, server, 'admin', '/ui/forms')
  assert.equal(await admin.textContent('h1'), 'Forms')
  await admin.fill('#title', 'Skin integrity check')
  await admin.click('[data-testid="create-form"]')
  await admin.waitForSelector('[data-testid="form-title"]')
  const formUrl = new URL(admin.url())
  const formId = formUrl.pathname.split('/').pop()
  await addItem(1, { link_id: 'intact', text: 'Is the skin intact?', kind: 'boolean', required: true })
  await addItem(2, { link_id: 'where', text: 'Where is it broken?', kind: 'string', required: true, enable_question: 'intact', enable_operator: '=', enable_answer: 'no' })
  // A follow-up on a question that is not there is refused beside the field.
  await admin.fill('[name="link_id"]', 'bad')
  await admin.fill('[name="text"]', 'Bad')
  await admin.selectOption('select[name="kind"]', 'string')
  await admin.fill('[name="enable_question"]', 'nowhere')
  await admin.click('[data-testid="add-item-button"]')
  await admin.waitForSelector('.nhsuk-error-summary')
  assert.match(await admin.textContent('.nhsuk-error-summary'), /nowhere/)
  await admin.fill('[name="enable_question"]', '')
  await admin.fill('[name="link_id"]', '')
  await addItem(3, { link_id: 'score', text: 'Pressure ulcer risk score', kind: 'integer', required: true, extract: `${WL}/CodeSystem/forms|skin-score|Skin risk score` })
  assert.equal(await admin.locator('[data-testid="item-row"]').count(), 3)
  await admin.click('button:has-text("Make active")')
  await admin.waitForSelector('[data-status="active"]')
  await screenshot(admin, 'forms-defined')
  const problems = await accessibilityProblems(admin)
  assert.deepEqual(problems, [], problems.join('; '))

  // Its KPI, defined by the administrator on the KPI page (a window of
  // 0 hours refused beside the field first).
  const q = await fhir('GET', `Questionnaire/${formId}`)
  await admin.goto(server.url + '/ui/kpis')
  await admin.fill('#title', 'Skin checked within 6 hours of admission')
  await admin.selectOption('#form', q.url)
  await admin.fill('#window', '0')
  await admin.click('[data-testid="define-kpi"]')
  await admin.waitForSelector('.nhsuk-error-summary')
  assert.match(await admin.textContent('.nhsuk-error-summary'), /whole number of hours/)
  assert.equal(await admin.getAttribute('.nhsuk-error-summary a', 'href'), '#window')
  await admin.fill('#window', '6')
  await admin.click('[data-testid="define-kpi"]')
  await admin.waitForURL(u => u.search.includes('done=defined'))
  const defined = admin.locator('[data-testid="kpi"]', { has: admin.locator('h2', { hasText: 'Skin checked within 6 hours' }) })
  const kpiId = await defined.getAttribute('data-kpi')
  assert.ok(kpiId)
  assert.deepEqual(await accessibilityProblems(admin), [])
  await screenshot(admin, 'forms-kpi-defined')

  // The nurse completes it from the chart.
  await signIn(nurse, server, 'nurse.w1', '/ui/patients/browser-forms-p')
  await nurse.click('[data-testid="forms-link"] a')
  await nurse.waitForURL(u => u.pathname === '/ui/patients/browser-forms-p/forms')
  await nurse.click(`[data-testid="fill-form"][data-form="${formId}"]`)
  await nurse.waitForSelector('[data-testid="fill-title"]')
  assert.equal(await nurse.locator('[name="q-where"]').count(), 0, 'the follow-up is not asked yet')
  // enableWhen is applied as the nurse answers (the server decides which
  // questions are asked; the page asks it again on each change): the
  // follow-up appears for "No" and goes for "Yes", with no button to press.
  assert.equal(await nurse.isVisible('[data-testid="refresh"]'), false, 'no "Update the questions" button with the script')
  await nurse.check('#q-intact-2')
  await nurse.waitForSelector('[name="q-where"]')
  await nurse.fill('[name="q-score"]', '9')
  await nurse.fill('[name="q-where"]', 'Sacrum')
  await nurse.check('#q-intact')
  await nurse.waitForSelector('[name="q-where"]', { state: 'detached' })
  assert.equal(await nurse.inputValue('[name="q-score"]'), '9', 'other answers are kept')
  await nurse.check('#q-intact-2')
  await nurse.waitForSelector('[name="q-where"]')
  assert.equal(await nurse.inputValue('[name="q-where"]'), '', 'an answer to a question that went away is not kept')
  await nurse.fill('[name="q-score"]', '14')
  await nurse.click('[data-testid="complete"]')
  await nurse.waitForSelector('.nhsuk-error-summary')
  assert.match(await nurse.textContent('.nhsuk-error-summary'), /Where is it broken/)
  assert.equal(await nurse.getAttribute('.nhsuk-error-summary a', 'href'), '#q-where')
  await nurse.fill('[name="q-where"]', 'Left heel')
  await nurse.click('[data-testid="complete"]')
  await nurse.waitForURL(u => u.pathname === '/ui/patients/browser-forms-p/forms')
  assert.match(await nurse.textContent('.nhsuk-notification-banner--success'), /completed/)
  assert.equal(await nurse.locator('[data-testid="response-row"] [data-status="completed"]').count(), 1)
  await screenshot(nurse, 'forms-completed')

  // The extracted score is on the record.
  const obs = await fhir('GET', 'Observation?subject=Patient/browser-forms-p&code=' + encodeURIComponent(`${WL}/CodeSystem/forms|skin-score`))
  assert.equal(obs.entry?.length, 1)
  assert.equal(obs.entry[0].resource.valueInteger, 14)

  // Its KPI counts the admission.
  await nurse.goto(server.url + '/ui/kpis')
  assert.equal(await nurse.locator('[data-testid="define-kpi"]').count(), 0, 'a nurse does not define KPIs')
  const kpi = nurse.locator(`[data-testid="kpi"][data-kpi="${kpiId}"]`)
  await kpi.waitFor()
  const total = kpi.locator('[data-testid="kpi-ward"][data-ward="All wards"]')
  assert.equal(await total.getAttribute('data-met'), '1')
  assert.ok(await kpi.locator('[data-testid="kpi-chart"]').isVisible())
  await screenshot(nurse, 'forms-kpis')

  // Retired by the administrator: no longer reported.
  await admin.goto(server.url + '/ui/kpis')
  await admin.locator(`[data-testid="kpi"][data-kpi="${kpiId}"] [data-testid="retire-kpi"]`).click()
  await admin.waitForURL(u => u.search.includes('done=retired'))
  assert.equal(await admin.locator(`[data-testid="kpi"][data-kpi="${kpiId}"]`).count(), 0)
  assert.equal((await fhir('GET', `Measure/${kpiId}`)).status, 'retired')
})
