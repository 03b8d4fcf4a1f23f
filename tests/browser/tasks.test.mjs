// Tasks (issue 20) in a real browser: headless Chromium against a real
// `wardline serve --demo`. Four tasks owned by ward watford-w1 are raised
// over FHIR REST (one already past its due time); nurse.w1
//  * sees her ward's tasks, the overdue one first and marked, and the
//    header counting it;
//  * claims one; reassigns one to the community nursing team; completes
//    one with its outcome (refused first without one: the error summary);
//  * after the clock moves (`wardline tasks run --now` five hours on), the
//    overdue one is escalated (priority raised, the ward's senior nurse
//    named in its history) and shown as escalated.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, token
const ids = {}
const KIND = 'https://fhir.wardline.invalid/CodeSystem/task-kind'

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

const iso = ms => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z')

async function raise (name, priority, dueMs) {
  const t = await fhir('POST', 'Task', {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    priority,
    code: { coding: [{ system: KIND, code: `browser-${name}`, display: `Browser ${name}` }] },
    description: `Browser task: ${name}`,
    owner: { reference: 'Location/watford-w1' },
    authoredOn: iso(Date.now()),
    restriction: { period: { end: iso(dueMs) } }
  })
  ids[name] = t.id
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  server.cli('client', 'add', 'browser-tasks', '--name', 'Browser tasks test', '--scope', 'system/*.cruds')
  token = server.cli('token', '--client', 'browser-tasks', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const hour = 3600 * 1000
  await raise('late', 'routine', Date.now() - hour)
  await raise('claim', 'urgent', Date.now() + 2 * hour)
  await raise('reassign', 'routine', Date.now() + 3 * hour)
  await raise('complete', 'routine', Date.now() + 4 * hour)
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

const row = (page, id) => page.locator(`[data-testid="task-row"][data-task="${id}"]`)

test('a nurse works her ward\'s tasks and an overdue one is escalated after the clock moves', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, server, 'nurse.w1', '/ui/tasks?list=ward&ward=watford-w1')
  // The overdue task first, marked; the header counts it.
  const first = page.locator('[data-testid="task-row"]').first()
  assert.equal(await first.getAttribute('data-task'), ids.late)
  assert.equal(await row(page, ids.late).locator('[data-testid="overdue"]').count(), 1)
  assert.match(await page.locator('[data-testid="tasks-badge"]').innerText(), /Tasks \(\d+ overdue\)/)
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'tasks-ward')

  // Claim one from the list.
  await row(page, ids.claim).locator('[data-testid="claim"]').click()
  await page.waitForURL(/done=claimed/)
  assert.equal(await row(page, ids.claim).count(), 0, 'claimed: hers now, off the ward\'s list')
  await page.goto(`${server.url}/ui/tasks?list=mine`)
  assert.equal(await row(page, ids.claim).locator('[data-testid="status"]').innerText(), 'accepted')
  assert.match(await row(page, ids.claim).locator('[data-testid="owner"]').innerText(), /Grace Okafor/)

  // Reassign one to the community nursing team.
  await page.goto(`${server.url}/ui/tasks/${ids.reassign}`)
  await page.selectOption('#owner', 'CareTeam/ct-community')
  await page.locator('[data-testid="assign"]').click()
  await page.waitForURL(/done=assigned/)
  assert.match(await page.locator('[data-testid="task-owner"]').innerText(), /Community nursing team/)
  assert.match(await page.locator('[data-testid="history"]').innerText(), /Reassigned to Community nursing team/)

  // Complete one: refused without an outcome, then done.
  await page.goto(`${server.url}/ui/tasks/${ids.complete}`)
  await page.locator('[data-testid="complete"]').click()
  await page.locator('.nhsuk-error-summary').waitFor()
  assert.equal(await page.locator('.nhsuk-error-summary a[href="#outcome"]').count(), 1)
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.fill('#outcome', 'Dressing changed, wound clean')
  await page.locator('[data-testid="complete"]').click()
  await page.waitForURL(/done=completed/)
  assert.equal(await page.locator('[data-testid="task-status"]').innerText(), 'completed')
  assert.equal(await page.locator('[data-testid="outcome"]').innerText(), 'Dressing changed, wound clean')

  // Five hours on, the job escalates the overdue task (4 hours overdue).
  const later = iso(Date.now() + 5 * 3600 * 1000)
  assert.match(server.cli('tasks', 'run', '--now', later), new RegExp(`escalated: Task/${ids.late} \\(Overdue by 4 hours\\)`))
  await page.goto(`${server.url}/ui/tasks?list=ward&ward=watford-w1`)
  assert.equal(await row(page, ids.late).locator('[data-testid="escalated"]').count(), 1)
  assert.equal(await row(page, ids.late).locator('[data-testid="priority"]').innerText(), 'urgent')
  assert.equal(await row(page, ids.complete).count(), 0, 'a completed task leaves the list')
  await page.goto(`${server.url}/ui/tasks/${ids.late}`)
  assert.match(await page.locator('[data-testid="history"]').innerText(), /Escalated \(Overdue by 4 hours\); priority routine → urgent; Megan Lloyd told/)
  await screenshot(page, 'tasks-escalated')
  await page.context().close()
})
