// Observations and NEWS2 in a real browser: headless Chromium against a
// real `wardline serve --demo`. nurse.w1 opens the observations chart of an
// in-patient on ward watford-w1 from the ward board (through the chart's
// "Observations and NEWS2" link) and enters a set with
// the keyboard (tab order, numeric keyboard): first a temperature out of
// range (the error summary links to the field), then a set scoring NEWS2 7:
// the emergency alert shows, the graphs show the reading over the NEWS2
// bands, and the emergency task is on the escalation task list, where the
// nurse acknowledges it.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, patient

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'nurse.w1', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(a => a.getAttribute('href')))
  patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  await page.context().close()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function typeSet (page, { rr, spo2, sbp, pulse, temp }) {
  await page.locator('#respiration_rate').fill('')
  await page.locator('#respiration_rate').focus()
  // Keyboard entry, in tab order: RR, SpO2, air/oxygen, BP, pulse, ACVPU, temperature.
  await page.keyboard.type(rr)
  await page.keyboard.press('Tab')
  await page.keyboard.type(spo2)
  await page.check('#oxygen') // Air
  await page.locator('#systolic_bp').fill(sbp)
  await page.locator('#pulse').fill(pulse)
  await page.selectOption('#consciousness', 'A')
  await page.locator('#temperature').fill(temp)
}

test('a nurse enters observations scoring NEWS2 7: an emergency task is raised and shown, the graph shows the readings', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'nurse.w1', `/ui/patients/${patient}`)
  await page.locator('[data-testid="observations-link"] a').click()
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/observations`)
  assert.equal(await page.locator('[data-testid="patient-banner"]').count(), 1, 'the patient banner')
  assert.equal(await page.locator('#respiration_rate').getAttribute('inputmode'), 'decimal')

  await typeSet(page, { rr: '25', spo2: '93', sbp: '105', pulse: '95', temp: '73' })
  await page.click('[data-testid="record-obs"]')
  const summary = page.locator('.nhsuk-error-summary')
  await summary.waitFor()
  assert.match(await summary.innerText(), /Temperature must be between/)
  assert.equal(await summary.locator('a[href="#temperature"]').count(), 1)

  await typeSet(page, { rr: '25', spo2: '93', sbp: '105', pulse: '95', temp: '37' })
  await page.click('[data-testid="record-obs"]')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/observations` && u.search.includes('done=recorded'))
  const alert = page.locator('[data-testid="news2-alert"][data-level="emergency"]')
  assert.equal(await alert.count(), 1)
  assert.match(await alert.innerText(), /NEWS2 7/)
  assert.equal(await page.locator('[data-testid="latest-news2"]').getAttribute('data-score'), '7')
  const rrGraph = page.locator('[data-testid="obs-graph"][data-parameter="RespirationRate"]')
  assert.equal(await rrGraph.count(), 1)
  assert.ok(await rrGraph.locator('[data-testid="news2-band"]').count() >= 5, 'the NEWS2 bands are shaded')
  assert.equal(await rrGraph.locator('[data-testid="obs-point"][data-value="25"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'observations-news2-7')

  await page.goto(`${server.url}/ui/observations/tasks`)
  const row = page.locator('[data-testid="escalation-row"][data-level="emergency"]')
  assert.equal(await row.count(), 1)
  assert.match(await row.innerText(), /NEWS2 7/)
  await row.getByRole('button', { name: 'Acknowledge' }).click()
  await page.waitForURL(u => u.search.includes('done=acknowledged'))
  assert.match(await page.locator('[data-testid="escalation-row"][data-level="emergency"]').innerText(), /Acknowledged/)
  await screenshot(page, 'observations-tasks')
})
