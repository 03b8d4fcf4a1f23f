// Care Act notices in a real browser: headless Chromium against a real
// `wardline serve --demo`.
//  * dr.watford opens an in-patient's social-care notices from the chart;
//    an assessment notice without a contact name is refused with an error
//    summary linking to the field; given to the demo's Hertfordshire County
//    Council, it is listed with its delivery (queued) and timescales.
//  * A discharge notice for today is short of the timescales: refused at
//    the reason field, then given with a reason, which the list shows.
//  * `wardline transfers overdue` five hours on raises the notices not
//    acknowledged; the social-care worklist for Ward 1 shows the admission
//    and what needs doing.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token, patient, encounter

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

const day = (offsetDays) => new Date(Date.now() + offsetDays * 86400 * 1000).toISOString().slice(0, 10)

/** Fills the NHS date input `id` (day, month, year) with `iso` (YYYY-MM-DD). */
async function fillDate (page, id, iso) {
  const [y, m, d] = iso.split('-')
  await page.fill(`#${id}-day`, String(Number(d)))
  await page.fill(`#${id}-month`, String(Number(m)))
  await page.fill(`#${id}-year`, y)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-care-act', '--name', 'Browser Care Act test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-care-act', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  await page.context().close()
  const found = await fhir('GET', `Encounter?patient=Patient/${patient}&status=in-progress`)
  encounter = (found.entry || []).map(e => e.resource).find(e => e.class?.code === 'IMP')?.id
  assert.ok(encounter, 'the admission')
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('give an assessment notice and a discharge notice, then see the ward worklist', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'dr.watford', `/ui/patients/${patient}`)
  await page.click('[data-testid="social-care"]')
  await page.waitForURL(u => u.pathname === `/ui/encounters/${encounter}/social-care`)
  assert.equal(await page.locator('[data-testid="no-notices"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])

  // The assessment notice, first without a contact name.
  await page.getByLabel('Local authority').selectOption('la-hertfordshire')
  await fillDate(page, 'discharge-day', day(3))
  await page.getByLabel(/was consulted before this notice/).check()
  await page.getByLabel('Neither the patient nor their carer objected').check()
  await page.getByLabel('Considered: NHS continuing healthcare is not to be provided').check()
  await page.getByLabel('Contact telephone').fill('01923 217 000')
  await page.click('[data-testid="give-assessment"]')
  const summary = page.locator('.nhsuk-error-summary')
  assert.match(await summary.innerText(), /name of the person at the hospital/)
  assert.equal(await summary.locator('a').getAttribute('href'), '#contact-name')
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByLabel('Contact at the hospital (name)').fill('Jo Bloggs, discharge coordinator')
  await page.click('[data-testid="give-assessment"]')
  await page.waitForURL(u => u.search.includes('done=assessment'))
  const assessment = page.locator('[data-testid="notice"][data-kind="assessment"]')
  assert.equal(await assessment.count(), 1)
  assert.match(await assessment.innerText(), /Hertfordshire County Council/)
  assert.match(await assessment.locator('[data-testid="delivery"]').innerText(), /Queued/)
  assert.match(await assessment.locator('[data-testid="timescales"]').innerText(), /Earliest discharge \d{4}-\d{2}-\d{2}/)
  await screenshot(page, 'care-act-assessment')

  // The discharge notice for today: short of the timescales.
  await fillDate(page, 'discharge-day', day(0))
  await page.getByLabel(/has been told the proposed discharge day/).check()
  await page.getByLabel('Contact at the hospital (name)').fill('Jo Bloggs')
  await page.getByLabel('Contact telephone').fill('01923 217 000')
  await page.click('[data-testid="give-discharge"]')
  assert.equal(await page.locator('.nhsuk-error-summary a').getAttribute('href'), '#override-reason')
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByLabel(/Reason to give it short of the timescales/).fill('Care package restarts today; agreed with the council hospital team.')
  await page.click('[data-testid="give-discharge"]')
  await page.waitForURL(u => u.search.includes('done=discharge'))
  const discharge = page.locator('[data-testid="notice"][data-kind="discharge"]')
  assert.match(await discharge.locator('[data-testid="override"]').innerText(), /Care package restarts today/)

  // Five hours on, nothing acknowledged: the ward's worklist.
  const later = new Date(Date.now() + 5 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
  assert.match(server.cli('transfers', 'overdue', '--now', later), /care act notice: Task\//)
  await page.goto(`${server.url}/ui/social-care`)
  await page.getByLabel('Ward', { exact: true }).selectOption('watford-w1')
  await page.click('[data-testid="filter"]')
  await page.waitForURL(u => u.search.includes('ward=watford-w1'))
  const row = page.locator(`[data-testid="worklist-row"][data-encounter="Encounter/${encounter}"]`)
  assert.equal(await row.count(), 1)
  assert.match(await row.locator('[data-testid="tasks"]').innerText(), /not been acknowledged/)
  assert.match(await row.innerText(), /Hertfordshire County Council/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'care-act-worklist')
})
