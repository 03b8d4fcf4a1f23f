// The clinical workspace in a real browser: headless Chromium against a real
// `wardline serve --demo`. Every step is what a ward clerk or nurse would do;
// the bed board is watched from a second browser context, signed in as
// another user, and must follow each move without a reload.
//
// Run with `npm test` in tests/browser (scripts/test.sh does). Screenshots of
// the main pages go to target/browser-artifacts.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, launchBrowser, signIn, screenshot, accessibilityProblems, newNhsNumber
} from './harness.mjs'

// Generous: these bound a wait, they do not measure anything.
const LIVE_TIMEOUT_MS = 15_000

let server, chrome, clerk, nurse
const WARD = 'watford-w1'
const family = 'Playwright' + Math.random().toString(36).slice(2, 7).replace(/[0-9]/g, 'x')
const nhsNumber = newNhsNumber()
let patientPath // /ui/patients/{id} of the registered patient

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  clerk = await (await chrome.browser.newContext()).newPage()
  nurse = await (await chrome.browser.newContext()).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

/** Clicks a form's submit button and waits for the redirect to a URL
 * matching `done`; if the form comes back with errors instead, fails with
 * what it says. */
async function submitExpecting (page, button, done) {
  await Promise.all([page.waitForLoadState('domcontentloaded'), page.click(button)])
  await page.waitForLoadState('domcontentloaded')
  if (!done.test(page.url())) {
    const problem = await page.locator('.nhsuk-error-summary, h1 + p').first().textContent().catch(() => '')
    assert.fail(`${button} did not lead to ${done}: at ${page.url()}: ${problem}`)
  }
}

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

function registerForm (page, fields) {
  return (async () => {
    for (const [id, value] of Object.entries(fields)) {
      if (id === 'gender') await page.check(`input[name="gender"][value="${value}"]`)
      else if (id === 'ethnic_category') await page.selectOption('#ethnic_category', value)
      else if (id === 'birth_date') {
        // The NHS date input: day, month and year.
        const [y, m, d] = value.split('-')
        await page.fill('#birth_date-day', String(Number(d)))
        await page.fill('#birth_date-month', String(Number(m)))
        await page.fill('#birth_date-year', y)
      }
      else await page.fill(`#${id}`, value)
    }
    await page.click('button:has-text("Register patient")')
    await page.waitForLoadState('domcontentloaded')
  })()
}

test('a page asks for sign-in first, then comes back to it', async () => {
  await clerk.goto(server.url + '/ui/patients')
  await clerk.waitForURL(/\/auth\/login\?next=/)
  await screenshot(clerk, '01-sign-in')
  await signIn(clerk, server, 'clerk.watford', '/ui/patients')
  assert.equal(await clerk.textContent('[data-testid="signed-in-user"]'), 'clerk.watford')
  await assertAccessible(clerk, 'search page')
})

test('find demo patients by surname', async () => {
  await clerk.fill('#q', 'Smith')
  await clerk.click('main button:has-text("Search")')
  await clerk.waitForSelector('[data-testid="patient-results"]')
  const rows = await clerk.locator('[data-testid="patient-results"] tbody tr').count()
  assert.ok(rows > 0, 'no Smiths in the demo trust')
  await screenshot(clerk, '02-search-results')
})

test('find a demo patient by hospital number', async () => {
  // The results list each patient's hospital number, in the trust's scheme.
  const first = clerk.locator('[data-testid="patient-results"] tbody tr').first()
  const name = (await first.locator('td a').first().textContent()).trim()
  const number = (await first.locator('td').nth(5).textContent()).replace('Hospital number', '').trim()
  assert.match(number, /^W\d{8}$/, `the hospital number column shows the number: '${number}'`)
  // Typed as staff type it (lower case), it finds that patient and nobody else.
  await clerk.fill('#q', number.toLowerCase())
  await Promise.all([
    clerk.waitForURL(url => url.searchParams.get('q') === number.toLowerCase()),
    clerk.click('main button:has-text("Search")')
  ])
  const rows = clerk.locator('[data-testid="patient-results"] tbody tr')
  assert.equal(await rows.count(), 1)
  assert.equal((await rows.first().locator('td a').first().textContent()).trim(), name)
  await screenshot(clerk, '02b-search-by-hospital-number')
  // A wrong check digit is refused with the reason, not answered with nobody.
  const typo = number.slice(0, -1) + String((Number(number.slice(-1)) + 1) % 10)
  await clerk.fill('#q', typo)
  await Promise.all([
    clerk.waitForURL(url => url.searchParams.get('q') === typo),
    clerk.click('main button:has-text("Search")')
  ])
  assert.match(await clerk.textContent('.nhsuk-error-summary'), /check digit is wrong/)
  await assertAccessible(clerk, 'search page with a mistyped hospital number')
})

test('the date of birth is the NHS date input: day, month, year; a date not in the calendar is refused', async () => {
  await clerk.goto(server.url + '/ui/patients/new')
  for (const part of ['day', 'month', 'year']) {
    assert.equal(await clerk.getAttribute(`#birth_date-${part}`, 'inputmode'), 'numeric', part)
  }
  assert.equal(await clerk.textContent('#birth_date-hint'), 'For example, 15 3 1984')
  await registerForm(clerk, {
    nhs_number: newNhsNumber(), given: 'Ada', family, birth_date: '1961-02-30', gender: 'female',
    ethnic_category: 'G', address_line: '1 High Street', city: 'Watford', postcode: 'WD18 0AA'
  })
  const link = clerk.locator('.nhsuk-error-summary a[href="#birth_date"]')
  assert.match(await link.textContent(), /1961-02-30 is not a date in the calendar/)
  // What was typed is kept, in the three fields.
  assert.equal(await clerk.inputValue('#birth_date-day'), '30')
  assert.equal(await clerk.inputValue('#birth_date-month'), '2')
  assert.equal(await clerk.inputValue('#birth_date-year'), '1961')
  await assertAccessible(clerk, 'register page with a date error')
})

test('registering with an invalid NHS number is refused with a clear message', async () => {
  await clerk.goto(server.url + '/ui/patients/new')
  await assertAccessible(clerk, 'register page')
  await registerForm(clerk, {
    nhs_number: '943 476 5918', given: 'Ada', family, birth_date: '1961-07-14', gender: 'female',
    ethnic_category: 'G', address_line: '1 High Street', city: 'Watford', postcode: 'WD18 0AA'
  })
  const summary = await clerk.textContent('.nhsuk-error-summary')
  assert.match(summary, /NHS number/i)
  assert.match(summary, /not a valid NHS number/i)
  // The message is tied to the field, and the other answers are kept.
  assert.equal(await clerk.inputValue('#family'), family)
  assert.equal(await clerk.inputValue('#ethnic_category'), 'G')
  assert.ok(await clerk.getAttribute('#nhs_number', 'aria-describedby'))
  await assertAccessible(clerk, 'register page with errors')
  await screenshot(clerk, '03-register-invalid-nhs-number')
})

test('a valid registration opens the new record', async () => {
  await clerk.fill('#nhs_number', nhsNumber)
  await clerk.click('button:has-text("Register patient")')
  await clerk.waitForURL(/\/ui\/patients\/[^/?]+\?done=registered/)
  patientPath = new URL(clerk.url()).pathname
  const shown = (await clerk.textContent('[data-testid="banner-nhs"]')).trim()
  assert.equal(shown, `${nhsNumber.slice(0, 3)} ${nhsNumber.slice(3, 6)} ${nhsNumber.slice(6)}`)
  await assertAccessible(clerk, 'chart')
  await screenshot(clerk, '04-chart-registered')
})

test('registering the same person again warns of a duplicate', async () => {
  await clerk.goto(server.url + '/ui/patients/new')
  // No NHS number, a typo in the surname: what happens at a busy front desk.
  await registerForm(clerk, {
    given: 'Ada', family: family.slice(0, -1) + 'e', birth_date: '1961-07-14', gender: 'female',
    address_line: '1 High Street', city: 'Watford', postcode: 'WD18 0AA'
  })
  await clerk.waitForSelector('[data-testid="possible-duplicates"]')
  assert.match(await clerk.textContent('[data-testid="possible-duplicates"]'), new RegExp(family, 'i'))
  await screenshot(clerk, '05-duplicate-warning')
  // The clerk overrides (e.g. to show the merge flow); the record is created.
  await clerk.check('#confirm')
  await clerk.click('button:has-text("Register patient")')
  await clerk.waitForURL(/\?done=registered/)
  // The new record's chart finds the first one once the page has loaded.
  const found = clerk.locator('[data-testid="chart-duplicates"]')
  await found.waitFor()
  assert.match(await found.textContent(), new RegExp(family, 'i'))
  assert.equal(await clerk.getAttribute('[data-testid="duplicates"]', 'data-loaded'), 'true')
})

test('the duplicate is found by the scan and merged', async () => {
  await clerk.goto(server.url + '/ui/duplicates')
  await clerk.click('button:has-text("Look for duplicates now")')
  await clerk.waitForURL(/\/ui\/duplicates/)
  assert.match(await clerk.textContent('[data-testid="last-scan"]'), /Last checked \d{1,2} [A-Z][a-z]+ \d{4} at \d\d:\d\d UTC: \d+ records?, \d+ new/)
  const card = clerk.locator('[data-testid="review"]', { hasText: family }).first()
  await card.waitFor()
  // The same person with a typo in the surname: a probable duplicate, and
  // the card says so (possible ones carry another tag).
  assert.equal(await card.getAttribute('data-band'), 'probable')
  assert.equal((await card.locator('[data-testid="band"]').textContent()).trim(), 'Probable duplicate')
  // The whole queue is counted, strongest first: no card above scores less
  // than one below.
  assert.match(await clerk.textContent('[data-testid="queue-count"]'), /\d+ open reviews?\./)
  const scores = (await clerk.locator('[data-testid="review"]').evaluateAll(
    cards => cards.map(c => Number(c.getAttribute('data-score')))))
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a))
  await assertAccessible(clerk, 'duplicates queue')
  await screenshot(clerk, '06-duplicates-queue')
  // Keep the record with the NHS number.
  const merges = card.locator('a:has-text("Merge")')
  let chosen = null
  for (let i = 0; i < await merges.count(); i++) {
    const href = await merges.nth(i).getAttribute('href')
    if (href.includes(`target=${encodeURIComponent(patientPath.split('/').pop())}`)) chosen = merges.nth(i)
  }
  assert.ok(chosen, 'no merge link keeping the registered record')
  await chosen.click()
  await clerk.waitForSelector('[data-testid="side-by-side"]')
  await screenshot(clerk, '07-merge-confirm')
  await clerk.click('button:has-text("Merge records")')
  await clerk.waitForURL(/\?done=merged/)
  assert.equal(new URL(clerk.url()).pathname, patientPath)
  assert.match(await clerk.textContent('.nhsuk-notification-banner'), /merged/i)
})

async function boardBed (state) {
  // A bed on the ward in `state`, read from the nurse's live board.
  const bed = nurse.locator(`li[data-state="${state}"]`).first()
  await bed.waitFor()
  return (await bed.getAttribute('data-testid')).replace(/^bed-/, '')
}

/** An available bed in a bay where a patient in isolation is, from the
 * nurse's live board (the demo's ward 1 has one, with MRSA, in bay 1). */
async function bedInBayWithIsolation () {
  const bay = nurse.locator('section.wl-bay')
    .filter({ has: nurse.locator('li[data-state="occupied"] .nhsuk-tag:has-text("Isolation")') })
    .filter({ has: nurse.locator('li[data-state="available"]') })
    .first()
  await bay.waitFor()
  const bed = bay.locator('li[data-state="available"]').first()
  return (await bed.getAttribute('data-testid')).replace(/^bed-/, '')
}

/** Submits an admit or transfer form; when the bed raises placement
 * concerns (mixed-sex bay, isolation), gives `reason` and submits again. */
async function submitPlacing (page, button, done, reason = 'No other bed on the ward tonight') {
  await Promise.all([page.waitForLoadState('domcontentloaded'), page.click(button)])
  await page.waitForLoadState('domcontentloaded')
  if (await page.locator('[data-testid="placement-concerns"]').count()) {
    await page.fill('#placement_reason', reason)
  }
  await submitExpecting(page, button, done)
}

function waitForBed (bedId, state) {
  return nurse.waitForSelector(`[data-testid="bed-${bedId}"][data-state="${state}"]`, { timeout: LIVE_TIMEOUT_MS })
}

test('the nurse watches the ward board', async () => {
  await signIn(nurse, server, 'nurse.w1', `/ui/beds/${WARD}`)
  await nurse.waitForSelector('body[data-live-connected="true"]', { timeout: LIVE_TIMEOUT_MS })
  await assertAccessible(nurse, 'bed board')
  await screenshot(nurse, '08-bed-board')
})

let firstBed, secondBed

test('admit to a bed: isolation in the bay is warned of first; the board shows the admission without a reload', async () => {
  // Ada into a bay where a patient is in isolation.
  firstBed = await bedInBayWithIsolation()
  await nurse.evaluate(() => { window.__notReloaded = true })
  await clerk.goto(server.url + patientPath)
  await clerk.click('a:has-text("Admit")')
  await clerk.waitForSelector('#bed')
  await assertAccessible(clerk, 'admit form')
  await clerk.check('input[name="kind"][value="emergency"]')
  await clerk.selectOption('#bed', firstBed)
  await clerk.selectOption('#specialty', { index: 1 })
  // The consultant is chosen from a list of names, not typed as an id.
  assert.ok(await clerk.locator('#consultant option').count() > 1, 'no consultants to choose from')
  await clerk.selectOption('#consultant', { index: 1 })
  await screenshot(clerk, '09-admit')
  await Promise.all([clerk.waitForLoadState('domcontentloaded'), clerk.click('button:has-text("Admit patient")')])
  await clerk.waitForSelector('[data-testid="placement-concerns"]')
  assert.match(await clerk.textContent('[data-testid="placement-concerns"]'), /in isolation \(.*MRSA/i)
  assert.match(await clerk.textContent('.nhsuk-error-summary'), /reason/i)
  assert.equal(await nurse.getAttribute(`[data-testid="bed-${firstBed}"]`, 'data-state'), 'available', 'admitted before the warning was answered')
  await assertAccessible(clerk, 'admit form with placement concerns')
  await screenshot(clerk, '09b-admit-placement-concerns')
  await clerk.fill('#placement_reason', 'Only bed free; infection control agreed bay end')
  await submitExpecting(clerk, 'button:has-text("Admit patient")', /\?done=admitted/)
  assert.doesNotMatch(await clerk.textContent('[data-testid="banner-location"]'), /Not admitted/)
  await waitForBed(firstBed, 'occupied')
  assert.equal(await nurse.evaluate(() => window.__notReloaded), true, 'the board page was reloaded')
  assert.match(await nurse.textContent(`[data-testid="bed-${firstBed}"]`), new RegExp(family, 'i'))
  await screenshot(nurse, '10-bed-board-after-admission')
})

test('an occupied bed is not offered for another admission', async () => {
  // Another patient, straight to the occupied bed by its id.
  await clerk.goto(server.url + '/ui/patients/new')
  await registerForm(clerk, {
    nhs_number: newNhsNumber(), given: 'Bo', family: family + 'two', birth_date: '1970-01-02',
    gender: 'male', address_line: '2 Mill Lane', city: 'Watford', postcode: 'WD18 0BB'
  })
  await clerk.waitForURL(/\?done=registered/)
  const other = new URL(clerk.url()).pathname
  await clerk.click('a:has-text("Admit")')
  await clerk.waitForSelector('#bed')
  // The occupied bed is not offered.
  const offered = await clerk.locator(`#bed option[value="${firstBed}"]`).count()
  assert.equal(offered, 0, 'an occupied bed was offered')
  await clerk.goto(server.url + other)
})

test('transfer: the old bed goes to cleaning and the new one fills', async () => {
  secondBed = await boardBed('available')
  assert.notEqual(secondBed, firstBed)
  await clerk.goto(server.url + patientPath)
  await clerk.click('a:has-text("Transfer")')
  await clerk.waitForSelector('#bed')
  await clerk.selectOption('#bed', secondBed)
  await submitPlacing(clerk, 'button:has-text("Transfer patient")', /\?done=transferred/)
  await waitForBed(secondBed, 'occupied')
  await waitForBed(firstBed, 'cleaning')
  assert.equal(await nurse.evaluate(() => window.__notReloaded), true)
})

test('discharge: the bed goes to cleaning; the record says not admitted', async () => {
  await clerk.goto(server.url + patientPath)
  await clerk.click('a:has-text("Discharge")')
  await clerk.waitForSelector('#destination')
  await assertAccessible(clerk, 'discharge form')
  await clerk.selectOption('#destination', { index: 1 })
  await clerk.selectOption('#method', { index: 1 })
  await screenshot(clerk, '11-discharge')
  await submitExpecting(clerk, 'button:has-text("Discharge patient")', /\?done=discharged/)
  assert.match(await clerk.textContent('[data-testid="banner-location"]'), /Not admitted/)
  await waitForBed(secondBed, 'cleaning')
  await screenshot(nurse, '12-bed-board-after-discharge')
})

test('the nurse marks the bed cleaned from the board', async () => {
  await nurse.click(`[data-testid="bed-${secondBed}"] button:has-text("Mark cleaned")`)
  await nurse.waitForURL(new RegExp(`/ui/beds/${WARD}$`))
  await waitForBed(secondBed, 'available')
})

test('errors are pages with words, not stack traces', async () => {
  const r = await clerk.goto(server.url + '/ui/patients/no-such-patient')
  assert.equal(r.status(), 404)
  assert.match(await clerk.textContent('h1'), /not found/i)
  const body = await clerk.textContent('body')
  assert.doesNotMatch(body, /panicked|backtrace|at src\//i)
})

test('on a phone: no page scrolls sideways, and the controls are big enough to tap', async () => {
  const phone = await (await chrome.browser.newContext({
    viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2
  })).newPage()
  await signIn(phone, server, 'dr.watford', '/ui/beds')
  const pages = [
    ['/ui/beds', 'phone-bed-board'],
    [`/ui/beds/${WARD}`, 'phone-ward-board'],
    ['/ui/patients?q=Smith', 'phone-search'],
    [patientPath, 'phone-chart'],
    ['/ui/duplicates', 'phone-duplicates']
  ]
  for (const [path, shot] of pages) {
    await phone.goto(server.url + path)
    await phone.waitForLoadState('domcontentloaded')
    const { scroll, width } = await phone.evaluate(() => ({
      scroll: document.documentElement.scrollWidth, width: window.innerWidth
    }))
    assert.ok(scroll <= width, `${path}: the page is ${scroll}px wide on a ${width}px screen`)
    // WCAG 2.5.8 (AA): targets at least 24 by 24 CSS pixels.
    const small = await phone.evaluate(() => [...document.querySelectorAll('main button, main input, main select')]
      .filter(e => e.type !== 'hidden' && e.type !== 'radio' && e.type !== 'checkbox' && e.offsetParent !== null)
      .map(e => [e.getBoundingClientRect(), e.name || e.textContent.trim()])
      .filter(([r]) => r.width < 24 || r.height < 24)
      .map(([r, n]) => `${n} (${Math.round(r.width)}x${Math.round(r.height)})`))
    assert.deepEqual(small, [], `${path}: controls too small to tap`)
    await assertAccessible(phone, `${path} on a phone`)
    await screenshot(phone, shot)
  }
  await phone.context().close()
})
