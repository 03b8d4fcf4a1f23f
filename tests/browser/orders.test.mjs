// Requesting from the chart in a real browser: headless Chromium against a
// real `wardline serve --demo` (its seed order catalogue loaded).
//  * the consultant dr.watford opens a patient on a Watford ward, chooses
//    FBC, U&E and a chest X-ray, answers the X-ray's questions (revealed
//    under the ticked examination), and places the order;
//  * the requisition shows three tests and two tubes; the labels page has
//    one label per tube, prints without the page around it, and the
//    barcode of each label, decoded from a screenshot with ZXing, is the
//    specimen identifier shown;
//  * ordering FBC again within its retest interval (set to 24 hours for
//    the test through the FHIR API, as a catalogue manager would) shows the
//    duplicate warning naming the earlier order, and goes through with a
//    reason.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { PNG } from 'pngjs'
import zxing from '@zxing/library'
import { startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

const RETEST_EXT = 'https://fhir.wardline.invalid/StructureDefinition/minimum-retest-interval'

let server, chrome, doctor, chart, requisition, specimens, nhsNumber

async function assertAccessible (page, where) {
  const problems = await accessibilityProblems(page)
  assert.deepEqual(problems, [], `${where}: ${problems.join('; ')}`)
}

/** FBC gets a 24-hour minimum retest interval, over FHIR REST. */
async function setFbcRetestInterval () {
  server.cli('client', 'add', 'browser-orders', '--name', 'Browser orders test', '--scope', 'system/*.cruds')
  const token = server.cli('token', '--client', 'browser-orders', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' }
  const url = `${server.url}/fhir/ActivityDefinition/path-fbc`
  const r = await fetch(url, { headers })
  assert.ok(r.ok, `GET path-fbc: ${r.status}`)
  const fbc = await r.json()
  fbc.extension = (fbc.extension || []).filter(e => e.url !== RETEST_EXT)
  fbc.extension.push({
    url: RETEST_EXT,
    valueDuration: { value: 24, unit: 'h', system: 'http://unitsofmeasure.org', code: 'h' }
  })
  delete fbc.meta
  const put = await fetch(url, { method: 'PUT', headers, body: JSON.stringify(fbc) })
  assert.ok(put.ok, `PUT path-fbc: ${put.status} ${await put.text()}`)
}

/** The text of a Code 128 barcode in a PNG, read by ZXing. */
function decodeBarcode (png) {
  const img = PNG.sync.read(png)
  const lum = new Uint8ClampedArray(img.width * img.height)
  for (let i = 0; i < lum.length; i++) {
    const [r, g, b, a] = img.data.subarray(i * 4, i * 4 + 4)
    // Transparent pixels are the white page behind.
    const alpha = a / 255
    lum[i] = Math.round(((r * 299 + g * 587 + b * 114) / 1000) * alpha + 255 * (1 - alpha))
  }
  const source = new zxing.RGBLuminanceSource(lum, img.width, img.height)
  const bitmap = new zxing.BinaryBitmap(new zxing.HybridBinarizer(source))
  const hints = new Map([[zxing.DecodeHintType.POSSIBLE_FORMATS, [zxing.BarcodeFormat.CODE_128]],
    [zxing.DecodeHintType.TRY_HARDER, true]])
  const result = new zxing.MultiFormatReader().decode(bitmap, hints)
  assert.equal(result.getBarcodeFormat(), zxing.BarcodeFormat.CODE_128)
  return result.getText()
}

before(async () => {
  server = await startServer()
  await setFbcRetestInterval()
  chrome = await launchBrowser()
  // Twice the pixels: the bars are drawn as a label printer would (203 dpi
  // gives a 76 mm label about 600 dots).
  doctor = await (await chrome.browser.newContext({ deviceScaleFactor: 2 })).newPage()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

test('the consultant orders FBC, U&E and a chest X-ray from the chart', async () => {
  await signIn(doctor, server, 'dr.watford', '/ui/beds/watford-w2')
  const href = await doctor.locator('main a[href^="/ui/patients/"]').first().getAttribute('href')
  chart = server.url + href
  await doctor.goto(chart)
  await doctor.waitForSelector('[data-testid="orders-section"]')
  await doctor.click('[data-testid="order-tests"]')
  await doctor.waitForSelector('h2:has-text("Order tests")')
  await assertAccessible(doctor, 'order form')

  // The X-ray's questions appear only once it is ticked.
  const questions = doctor.locator('[data-testid="questions-rad-cxr"]')
  assert.equal(await questions.isVisible(), false, 'questions hidden before the X-ray is chosen')
  await doctor.check('#t-path-fbc')
  await doctor.check('#t-path-ue')
  await doctor.check('#t-rad-cxr')
  await questions.waitFor({ state: 'visible' })
  await doctor.fill('#q-rad-cxr-clinical-indication', 'Fever and right basal crackles')
  await doctor.check('input[name="q:rad-cxr:pregnancy"][value="not-applicable"]')
  await doctor.fill('#q-rad-cxr-irmer-justification', 'Suspected pneumonia: result changes antibiotic choice')
  await doctor.check('input[name="priority"][value="urgent"]')
  await doctor.fill('#details', 'Community-acquired pneumonia suspected; on amoxicillin')
  await screenshot(doctor, 'orders-01-form')
  await doctor.click('button:has-text("Place order")')
  await doctor.waitForURL(/\/ui\/requisitions\/R\d{7}\?done=placed/)

  requisition = (await doctor.textContent('[data-testid="requisition"]')).trim()
  nhsNumber = (await doctor.textContent('[data-testid="banner-nhs"]')).trim()
  assert.match(requisition, /^R\d{7}$/)
  assert.equal(await doctor.locator('[data-testid="request"]').count(), 3)
  const requests = await doctor.textContent('[data-testid="requests"]')
  assert.match(requests, /Full blood count/)
  assert.match(requests, /Urea and electrolytes/)
  assert.match(requests, /Chest X-ray/)
  assert.match(requests, /Fever and right basal crackles/)
  specimens = (await doctor.locator('[data-testid="specimen-id"]').allTextContents()).map(s => s.trim())
  assert.deepEqual(specimens, [`${requisition}-1`, `${requisition}-2`])
  await assertAccessible(doctor, 'requisition')
  await screenshot(doctor, 'orders-02-requisition')
})

test('the labels print, and each barcode decodes to its specimen identifier', async () => {
  await doctor.click('[data-testid="print-labels"]')
  await doctor.waitForSelector('[data-testid="labels"]')
  await assertAccessible(doctor, 'labels')
  const labels = doctor.locator('[data-testid="label"]')
  assert.equal(await labels.count(), 2)
  for (let i = 0; i < 2; i++) {
    const label = labels.nth(i)
    assert.equal(await label.getAttribute('data-specimen'), specimens[i])
    assert.equal((await label.locator('[data-testid="label-requisition"]').textContent()).trim(), requisition)
    assert.equal((await label.locator('[data-testid="label-nhs"]').textContent()).trim(), nhsNumber)
    const png = await label.locator('[data-testid="label-barcode"] svg').screenshot()
    assert.equal(decodeBarcode(png), specimens[i], `label ${i + 1}`)
  }
  const tubes = await doctor.locator('[data-testid="label-tube"]').allTextContents()
  assert.match(tubes[0], /EDTA/)
  assert.match(tubes[1], /SST|gold/i)
  await screenshot(doctor, 'orders-03-labels')

  // Printed: only the labels, each the size of one.
  await doctor.emulateMedia({ media: 'print' })
  assert.equal(await doctor.locator('.nhsuk-header').isVisible(), false, 'the header is not printed')
  assert.equal(await doctor.locator('button:has-text("Print labels")').isVisible(), false)
  const box = await labels.first().boundingBox()
  // 76 mm at 96 CSS px per inch.
  assert.ok(Math.abs(box.width - 76 / 25.4 * 96) < 2, `label width ${box.width}`)
  // And the barcode still decodes as printed.
  const printed = await labels.first().locator('[data-testid="label-barcode"] svg').screenshot()
  assert.equal(decodeBarcode(printed), specimens[0])
  await doctor.emulateMedia({ media: 'screen' })
})

test('FBC again within its retest interval is a duplicate, ordered only with a reason', async () => {
  await doctor.goto(chart)
  const orders = await doctor.textContent('[data-testid="orders-section"]')
  assert.match(orders, new RegExp(requisition))
  await doctor.click('[data-testid="order-tests"]')
  await doctor.waitForSelector('h2:has-text("Order tests")')
  await doctor.check('#t-path-fbc')
  await doctor.fill('#details', 'Haemoglobin after a melaena episode')
  await doctor.click('button:has-text("Place order")')
  await doctor.waitForSelector('[data-testid="duplicate-warning"]')
  const warning = await doctor.textContent('[data-testid="duplicate-warning"]')
  assert.match(warning, /Full blood count/)
  assert.match(warning, /Sanjay Mehta/)
  assert.match(warning, new RegExp(requisition))
  assert.match(warning, /minimum retest interval is 1 day/)
  assert.ok(await doctor.isChecked('#t-path-fbc'), 'the test stays ticked')
  await assertAccessible(doctor, 'duplicate warning')
  await screenshot(doctor, 'orders-04-duplicate')

  await doctor.fill('#override', 'Melaena: haemoglobin needed now')
  await doctor.click('button:has-text("Place order")')
  await doctor.waitForURL(/\/ui\/requisitions\/R\d{7}\?done=placed/)
  const second = (await doctor.textContent('[data-testid="requisition"]')).trim()
  assert.notEqual(second, requisition)
  assert.match(await doctor.textContent('[data-testid="override"]'), /Melaena: haemoglobin needed now/)
})
