// The formulary in a real browser (headless Chromium against
// `wardline serve --demo`, which loads the starter formulary): a nurse
// searches it and sees each medicine's flags (controlled-drug schedule,
// high risk, time critical, local code) and opens one; a pharmacist pastes
// a wrong file on the import page and sees each problem by line, with
// nothing imported.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, nurse, pharmacist

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  nurse = await (await chrome.browser.newContext()).newPage()
  pharmacist = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

async function search (page, q) {
  await page.fill('#q', q)
  await page.click('[data-testid="formulary-search"] button[type="submit"]')
  await page.waitForURL(u => u.searchParams.get('q') === q)
}

test('a nurse searches the formulary and sees the flags', async () => {
  await signIn(nurse, server, 'nurse.w1', '/ui/formulary')
  assert.equal(await nurse.textContent('h1'), 'Formulary')
  await assertAccessible(nurse, 'formulary list')
  assert.equal(await nurse.locator('[data-testid="import-link"]').count(), 0, 'a nurse is not offered the import')

  await search(nurse, 'insulin glargine')
  const glargine = nurse.locator('[data-testid="formulary-table"] tbody tr')
  assert.equal(await glargine.count(), 1)
  assert.match(await glargine.textContent(), /Insulin glargine 100units\/ml/)
  assert.ok(await glargine.locator('[data-testid="tag-high-risk"]').isVisible())
  assert.ok(await glargine.locator('[data-testid="tag-time-critical"]').isVisible())
  assert.ok(await glargine.locator('[data-testid="local-code"]').isVisible())
  await screenshot(nurse, 'formulary-01-insulin')

  // Prefix search: 'morph' finds the morphine products, each CD-tagged.
  await search(nurse, 'morph')
  const rows = nurse.locator('[data-testid="formulary-table"] tbody tr')
  assert.ok(await rows.count() >= 4)
  const inj = rows.filter({ hasText: 'Morphine sulfate 10mg/1ml solution for injection ampoules' })
  assert.equal(await inj.locator('[data-testid="tag-cd"]').textContent(), 'CD2')

  // Paracetamol 500mg tablets carries real dm+d codes: no local-code tag.
  await search(nurse, 'paracetamol')
  const tabs = nurse.locator('[data-testid="medicine-med-42109611000001109"]')
  assert.equal(await tabs.locator('[data-testid="local-code"]').count(), 0)
  await tabs.locator('a').click()
  await nurse.waitForURL(u => u.pathname === '/ui/formulary/med-42109611000001109')
  assert.equal(await nurse.textContent('h1'), 'Paracetamol 500mg tablets')
  assert.match(await nurse.textContent('[data-testid="medicine-details"]'), /90332006/)
  assert.match(await nurse.textContent('[data-testid="siblings"]'), /Paracetamol 1g suppositories/)
  await assertAccessible(nurse, 'a medicine')
  await screenshot(nurse, 'formulary-02-medicine')
})

test('a pharmacist pastes a wrong file: each problem by line, nothing imported', async () => {
  await signIn(pharmacist, server, 'pharm.watford', '/ui/formulary')
  await pharmacist.click('[data-testid="import-link"]')
  await pharmacist.waitForURL(u => u.pathname === '/ui/formulary/import')
  await assertAccessible(pharmacist, 'import page')
  const header = 'code_system,vtm_code,vtm_name,vmp_code,vmp_name,amps,form,strength,routes,unit_of_dose,controlled_drug,high_risk,time_critical,classes,default_dose,default_frequency'
  const file = [
    header,
    'local,L1,Thing,L2,Thing 1mg tablets,,Tablet,1 mg/1 tablet,26643006,tablet,,no,no,,,',
    'local,L1,Thing,L3,Thing 2mg tablets,,Tablet,2 mg/1 tablet,1234,tablet,,no,no,,,',
    'local,L1,Thing,L4,Thing 3mg tablets,,Tablet,3 mg/1 tablet,26643006,tablet,7,no,no,,,'
  ].join('\n')
  await pharmacist.fill('#text', file)
  await pharmacist.click('[data-testid="formulary-import-submit"]')
  await pharmacist.waitForSelector('.nhsuk-error-summary')
  const summary = await pharmacist.textContent('.nhsuk-error-summary')
  assert.match(summary, /the pasted file line 3: routes: '1234' is not a known route code/)
  assert.match(summary, /the pasted file line 4: controlled_drug: '7' is not a controlled-drug schedule/)
  assert.equal(await pharmacist.inputValue('#text'), file, 'the pasted text is kept')
  await assertAccessible(pharmacist, 'import refused')
  await screenshot(pharmacist, 'formulary-03-import-refused')
  // Nothing was imported: the formulary still has its medicines.
  await pharmacist.goto(`${server.url}/ui/formulary?q=thing`)
  assert.ok(await pharmacist.locator('[data-testid="formulary-empty"]').isVisible())
})
