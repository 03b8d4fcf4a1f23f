// From the order to the acknowledged result, in a real browser: headless
// Chromium against a real `wardline serve --demo`, every step through the
// pages the people concerned use (issue 16's demonstration).
//  * dr.watford orders FBC + U&E and a chest X-ray from a ward patient's
//    chart and prints the labels; each label's barcode, decoded from a
//    screenshot with ZXing, is the tube's specimen number, which begins
//    with the requisition;
//  * bms.lab receives both tubes by typing the decoded barcodes into the
//    reception box, enters the U&E (potassium 7.1 mmol/L, critical) and the
//    FBC (haemoglobin 62 g/L, critical) and validates them; cs.lab
//    authorises both;
//  * dr.watford finds both at the top of the results inbox, flagged
//    critical; opens the U&E, looks at the patient's cumulative view (the
//    potassium trend drawn as SVG), and acknowledges it;
//  * the FBC is left unacknowledged: `wardline results escalate --now`
//    59 minutes on escalates nothing, later than the hour it escalates it
//    to the responsible consultant, and the doctor's inbox and the result
//    say so (the clock is injected, never slept).
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { PNG } from 'pngjs'
import zxing from '@zxing/library'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

let server, chrome, doctor, patientPath, requisition
/** Specimen number → the tube's type as the label shows it. */
const tubes = new Map()
let released

/** The text of the Code 128 barcode in a PNG screenshot, read by ZXing. */
function decodeBarcode (png) {
  const img = PNG.sync.read(png)
  const lum = new Uint8ClampedArray(img.width * img.height)
  for (let i = 0; i < lum.length; i++) {
    const [r, g, b, a] = img.data.subarray(i * 4, i * 4 + 4)
    const alpha = a / 255
    lum[i] = Math.round(((r * 299 + g * 587 + b * 114) / 1000) * alpha + 255 * (1 - alpha))
  }
  const source = new zxing.RGBLuminanceSource(lum, img.width, img.height)
  const bitmap = new zxing.BinaryBitmap(new zxing.HybridBinarizer(source))
  const hints = new Map([[zxing.DecodeHintType.POSSIBLE_FORMATS, [zxing.BarcodeFormat.CODE_128]],
    [zxing.DecodeHintType.TRY_HARDER, true]])
  return new zxing.MultiFormatReader().decode(bitmap, hints).getText()
}

async function accessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

before(async () => {
  server = await startServer()
  chrome = await launchBrowser()
  doctor = await (await chrome.browser.newContext({ deviceScaleFactor: 2 })).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('the doctor orders FBC, U&E and a chest X-ray and prints labels that scan', async () => {
  await signIn(doctor, server, 'dr.watford', '/ui/beds/watford-w2')
  patientPath = await doctor.locator('main a[href^="/ui/patients/"]').first().getAttribute('href')
  await doctor.goto(server.url + patientPath)
  await doctor.click('[data-testid="order-tests"]')
  await doctor.waitForSelector('h2:has-text("Order tests")')
  await doctor.check('#t-path-fbc')
  await doctor.check('#t-path-ue')
  await doctor.check('#t-rad-cxr')
  await doctor.locator('[data-testid="questions-rad-cxr"]').waitFor({ state: 'visible' })
  await doctor.fill('#q-rad-cxr-clinical-indication', 'Breathless, bibasal crackles')
  await doctor.check('input[name="q:rad-cxr:pregnancy"][value="not-applicable"]')
  await doctor.fill('#q-rad-cxr-irmer-justification', 'Suspected pulmonary oedema: changes diuretic dose')
  await doctor.check('input[name="priority"][value="urgent"]')
  await doctor.fill('#details', 'Acute kidney injury suspected; on spironolactone')
  await doctor.click('button:has-text("Place order")')
  await doctor.waitForURL(/\/ui\/requisitions\/R\d{7}\?done=placed/)
  requisition = (await doctor.textContent('[data-testid="requisition"]')).trim()
  assert.equal(await doctor.locator('[data-testid="request"]').count(), 3)

  await doctor.click('[data-testid="print-labels"]')
  await doctor.waitForSelector('[data-testid="labels"]')
  await accessible(doctor, 'labels')
  const labels = doctor.locator('[data-testid="label"]')
  assert.equal(await labels.count(), 2, 'one label per tube: EDTA for the FBC, SST for the U&E')
  for (let i = 0; i < 2; i++) {
    const label = labels.nth(i)
    const png = await label.locator('[data-testid="label-barcode"] svg').screenshot()
    const scanned = decodeBarcode(png)
    assert.equal(scanned, await label.getAttribute('data-specimen'))
    assert.ok(scanned.startsWith(requisition + '-'), `${scanned} belongs to ${requisition}`)
    tubes.set(scanned, (await label.locator('[data-testid="label-tube"]').textContent()).trim())
  }
  await screenshot(doctor, 'order-to-result-01-labels')
})

/** bms.lab scans `barcode` at reception and enters `values` (analyte → value) on its report. */
async function receiveAndEnter (bms, barcode, values) {
  await bms.goto(server.url + '/ui/lab')
  assert.equal(await bms.evaluate(() => document.activeElement?.id), 'barcode', 'the scan box has the focus')
  await bms.keyboard.type(barcode)
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('received') === barcode),
    bms.keyboard.press('Enter')
  ])
  await Promise.all([
    bms.waitForURL(/\/ui\/lab\/reports\//),
    bms.click('[data-testid="received"] a')
  ])
  const report = new URL(bms.url()).pathname
  for (const [analyte, value] of Object.entries(values)) {
    await bms.fill(`tr[data-analyte="${analyte}"] input`, value)
  }
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('done') === 'entered'),
    bms.click('button:has-text("Save results")')
  ])
  await Promise.all([
    bms.waitForURL(u => u.searchParams.get('done') === 'validated'),
    bms.click('button:has-text("Validate")')
  ])
  return report
}

test('the laboratory receives both tubes by their barcodes, enters, validates and authorises', async () => {
  const bmsContext = await chrome.browser.newContext()
  const bms = await bmsContext.newPage()
  await signIn(bms, server, 'bms.lab', '/ui/lab')
  const reports = []
  for (const [barcode, tube] of tubes) {
    if (/EDTA/.test(tube)) {
      reports.push(await receiveAndEnter(bms, barcode, {
        Haemoglobin: '62',
        'White cell count': '7.2',
        Platelets: '250',
        Neutrophils: '4.1',
        Lymphocytes: '2.0',
        'Mean cell volume (MCV)': '90',
        Haematocrit: '0.21'
      }))
    } else {
      reports.push(await receiveAndEnter(bms, barcode, {
        Sodium: '137', Potassium: '7.1', Urea: '6.2', Creatinine: '70', 'eGFR (CKD-EPI)': '75'
      }))
    }
  }
  await bmsContext.close()

  const csContext = await chrome.browser.newContext()
  const cs = await csContext.newPage()
  await signIn(cs, server, 'cs.lab', reports[0])
  // Released from here on: an unacknowledged critical result is due at
  // release + 60 minutes.
  released = Date.now()
  for (const report of reports) {
    await cs.goto(server.url + report)
    await Promise.all([
      cs.waitForURL(u => u.searchParams.get('done') === 'authorised'),
      cs.click('button:has-text("Authorise and release")')
    ])
    assert.match(await cs.textContent('[data-testid="report-status"]'), /^final/)
  }
  await csContext.close()
})

test('the doctor sees the critical results first, reads the cumulative view and acknowledges', async () => {
  await doctor.goto(server.url + '/ui/results')
  const rows = doctor.locator('[data-testid="inbox-row"]')
  for (let i = 0; i < 2; i++) {
    assert.equal(await rows.nth(i).getAttribute('data-flag'), 'critical', `row ${i + 1} is critical`)
  }
  const ue = rows.filter({ hasText: /electrolytes/i }).first()
  await ue.locator('[data-testid="open-result"]').click()
  const potassium = doctor.locator('[data-testid="observation"]', { hasText: 'Potassium' })
  assert.match(await potassium.locator('[data-testid="flag-words"]').innerText(), /critically high/)
  await accessible(doctor, 'result')
  const resultUrl = doctor.url()

  // The cumulative view of the patient's results, with the trend drawn.
  await doctor.click('[data-testid="cumulative-link"]')
  await doctor.waitForURL(u => u.pathname === patientPath + '/results')
  const table = await doctor.textContent('main')
  assert.match(table, /Potassium/)
  assert.match(table, /7\.1/)
  assert.ok(await doctor.locator('main svg').count() > 0, 'a trend chart is drawn')
  await accessible(doctor, 'cumulative view')
  await screenshot(doctor, 'order-to-result-02-cumulative')

  await doctor.goto(resultUrl)
  await doctor.check('input[name="outcome"][value="action-required"]')
  await doctor.fill('textarea[name="note"]', 'Stop spironolactone; repeat U&E in 4 hours')
  await doctor.click('[data-testid="acknowledge"]')
  await doctor.waitForURL(/\/ui\/results/)
  await doctor.goto(server.url + '/ui/results')
  const left = doctor.locator('[data-testid="inbox-row"][data-flag="critical"]')
  assert.equal(await left.count(), 1, 'only the FBC is left to acknowledge')
  assert.match(await left.first().textContent(), /blood count/i)
  await screenshot(doctor, 'order-to-result-03-inbox')
})

test('the unacknowledged critical FBC escalates when the injected clock passes the limit', async () => {
  // Every task of this test was raised after `released`, and within a few
  // minutes of it.
  const at = minutes => new Date(released + minutes * 60_000).toISOString()
  assert.match(server.cli('results', 'escalate', '--now', at(59)), /nothing to escalate/)
  const out = server.cli('results', 'escalate', '--now', at(66))
  assert.equal((out.match(/escalated: Task\//g) || []).length, 1, out)
  // The escalation goes to the responsible consultant (the admission's
  // attending consultant); the requester's own inbox marks the result
  // escalated, and the result says so.
  await doctor.goto(server.url + '/ui/results')
  const fbc = doctor.locator('[data-testid="inbox-row"][data-flag="critical"]').first()
  assert.match(await fbc.textContent(), /blood count/i)
  assert.match(await fbc.textContent(), /Escalated to consultant/)
  await fbc.locator('[data-testid="open-result"]').click()
  assert.match(await doctor.locator('[data-testid="escalated"]').innerText(), /escalated to the responsible consultant/)
  await screenshot(doctor, 'order-to-result-04-escalated')
})
