// e-Referrals in a real browser between two real servers (`wardline serve
// --demo` twice, each with its own store): the referring trust A and the
// receiving provider B, each registered at the other as a SMART Backend
// Services client with a key from `wardline referrals keygen`.
//  * dr.watford on A opens Referrals from a patient's chart, makes a
//    referral (provider, priority, reason, a letter and an uploaded PDF
//    attached; an empty
//    reason is refused with the error summary linking to the field), checks
//    the provider's name and ODS code and sends it;
//  * `wardline referrals send` delivers it to B's $process-message;
//  * dr.watford on B finds it in the triage list with its letter and
//    accepts it; B's answer goes back and A's page shows it accepted.
//
// Run with `npm test` in tests/browser (scripts/test.sh does).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, startServer, launchBrowser, signIn, screenshot, accessibilityProblems } from './harness.mjs'

const ODS_B = 'RB2X0'
const SCOPE = 'system/ServiceRequest.crus system/Patient.crs system/DocumentReference.c system/Task.crus system/Organization.rs'

let a, b, chrome, keys, tokenA, tokenB

function keygen (who) {
  const key = join(keys, `${who}.der`)
  const jwks = join(keys, `${who}.jwks.json`)
  execFileSync(BIN, ['referrals', 'keygen', '--kid', who, '--key-out', key, '--jwks-out', jwks])
  return { key, jwks }
}

async function fhir (server, token, method, path, body) {
  const res = await fetch(`${server.url}/fhir/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json', 'content-type': 'application/fhir+json' },
    body: body ? JSON.stringify(body) : undefined
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

// What the servers' minute job does, with the clock a minute on (so what
// the pages just sent is due).
function deliver (server, clientId, key) {
  return server.cli('referrals', 'send', '--bars-endpoint', `${server.url}/fhir/$process-message`,
    '--bars-client-id', clientId, '--bars-key', key, '--bars-kid', clientId, '--bars-scope', SCOPE,
    '--now', new Date(Date.now() + 60000).toISOString())
}

before(async () => {
  // The tests deliver with `wardline referrals send`, not the minute job.
  process.env.WARDLINE_REFERRAL_JOB_SECONDS = '0'
  keys = mkdtempSync(join(tmpdir(), 'wardline-referral-keys-'))
  b = await startServer()
  a = await startServer()
  chrome = await launchBrowser()
  const ka = keygen('trust-a')
  const kb = keygen('provider-b')
  a.key = ka.key
  b.key = kb.key
  b.cli('client', 'add', 'trust-a', '--name', 'Northgate (A)', '--scope', SCOPE, '--jwks-file', ka.jwks)
  a.cli('client', 'add', 'provider-b', '--name', 'Southdale (B)', '--scope', SCOPE, '--jwks-file', kb.jwks)
  for (const s of [a, b]) s.cli('client', 'add', 'browser-referrals', '--name', 'Browser referrals test', '--scope', 'system/*.cruds')
  tokenA = a.cli('token', '--client', 'browser-referrals', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  tokenB = b.cli('token', '--client', 'browser-referrals', '--scope', 'system/*.cruds', '--minutes', '60').trim()
  await fhir(b, tokenB, 'PUT', 'Organization/b-self', {
    resourceType: 'Organization', id: 'b-self', active: true, name: 'Southdale Community Services',
    identifier: [{ system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: ODS_B }]
  })
  await fhir(a, tokenA, 'PUT', 'Endpoint/prov-b-bars', {
    resourceType: 'Endpoint', id: 'prov-b-bars', status: 'active',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-msg' },
    payloadType: [{ text: 'BaRS' }], address: `${b.url}/fhir/$process-message`
  })
  await fhir(a, tokenA, 'PUT', 'Organization/prov-b', {
    resourceType: 'Organization', id: 'prov-b', active: true, name: 'Southdale Community Services',
    identifier: [{ system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: ODS_B }],
    endpoint: [{ reference: 'Endpoint/prov-b-bars' }]
  })
})

after(async () => {
  await chrome?.close()
  await a?.stop()
  await b?.stop()
  if (keys) rmSync(keys, { recursive: true, force: true })
})

test('a doctor refers a patient with a letter to another provider, which accepts it', async () => {
  const page = await (await chrome.browser.newContext()).newPage()
  await signIn(page, a, 'dr.watford', '/ui/beds/watford-w1')
  const hrefs = await page.locator('a[href^="/ui/patients/"]').evaluateAll(as => as.map(x => x.getAttribute('href')))
  const patient = hrefs.map(h => h.replace('/ui/patients/', '')).find(id => id !== 'new' && !/[/?]/.test(id))
  assert.ok(patient, 'a patient on the board')
  const letter = await fhir(a, tokenA, 'POST', 'DocumentReference', {
    resourceType: 'DocumentReference', status: 'current', type: { text: 'Clinic letter' },
    subject: { reference: `Patient/${patient}` },
    content: [{ attachment: { contentType: 'application/pdf', data: 'JVBERi0xLjQKJSVFT0YK', title: 'Clinic letter' } }]
  })

  await page.goto(`${a.url}/ui/patients/${patient}`)
  await page.locator('[data-testid="referrals-link"] a').click()
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/referrals`)
  await page.click('[data-testid="new-referral"]')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/referrals/new`)
  assert.deepEqual(await accessibilityProblems(page), [])

  // A PDF from the computer: uploaded, then ticked on the form.
  await page.getByLabel('Document title').fill('Referral letter')
  await page.setInputFiles('#pdf', { name: 'referral.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%%EOF\n') })
  await page.click('[data-testid="upload"]')
  await page.waitForURL(u => u.pathname === `/ui/patients/${patient}/referrals/new` && u.search.includes('attach-'))
  assert.equal(await page.locator('input[name^="attach-"]:checked').count(), 1)

  await page.selectOption('#receiver', 'prov-b')
  await page.click('[data-testid="save-referral"]')
  await page.locator('.nhsuk-error-summary a[href="#reason"]').waitFor()
  assert.deepEqual(await accessibilityProblems(page), [])

  await page.selectOption('#receiver', 'prov-b')
  await page.getByLabel('Urgent').check()
  await page.getByLabel('Reason for referral').fill('Community rehabilitation after a fall')
  await page.locator(`#attach-${letter.id}`).check()
  await page.click('[data-testid="save-referral"]')
  await page.waitForURL(u => /^\/ui\/referrals\/[^/]+$/.test(u.pathname))
  const id = new URL(page.url()).pathname.replace('/ui/referrals/', '')
  assert.equal(await page.locator('[data-testid="referral-state"]').getAttribute('data-state'), 'draft')
  assert.match(await page.locator('[data-testid="receiver"]').innerText(), new RegExp(`Southdale Community Services \\(ODS ${ODS_B}\\)`))
  assert.deepEqual(await accessibilityProblems(page), [])
  await page.getByRole('button', { name: 'Send referral' }).click()
  await page.waitForURL(u => u.pathname === `/ui/referrals/${id}`)
  assert.equal(await page.locator('[data-testid="referral-state"]').getAttribute('data-state'), 'sent')
  await screenshot(page, 'referral-sent')

  assert.match(deliver(a, 'trust-a', a.key), new RegExp(`delivered: ServiceRequest/${id}`))

  // The receiving provider triages it.
  const pb = await (await chrome.browser.newContext()).newPage()
  await signIn(pb, b, 'dr.watford', '/ui/referrals/triage')
  const row = pb.locator('[data-testid="triage"] [data-testid="referral-row"]')
  assert.equal(await row.count(), 1)
  assert.deepEqual(await accessibilityProblems(pb), [])
  await row.locator('[data-testid="open-referral"]').click()
  await pb.waitForURL(u => /^\/ui\/referrals\/[^/]+$/.test(u.pathname))
  const attached = await pb.locator('[data-testid="attachments"]').innerText()
  assert.match(attached, /Clinic letter/)
  assert.match(attached, /Referral letter/)
  await screenshot(pb, 'referral-triage')
  const rid = new URL(pb.url()).pathname.replace('/ui/referrals/', '')
  // Accepting is triage (issue 19): a priority and the specialty; the RTT
  // clock starts on the date received.
  await pb.click('[data-testid="triage"]')
  await pb.waitForURL(u => u.pathname === `/ui/referrals/${rid}/triage`)
  await pb.getByLabel('Routine').check()
  await pb.selectOption('#specialty', '300')
  await pb.click('[data-testid="accept"]')
  await pb.waitForURL(u => /^\/ui\/rtt\/pathways\/[^/]+$/.test(u.pathname))
  await pb.goto(`${b.url}/ui/referrals/${rid}`)
  assert.equal(await pb.locator('[data-testid="referral-state"]').getAttribute('data-state'), 'accepted')

  assert.match(deliver(b, 'provider-b', b.key), new RegExp(`delivered: ServiceRequest/${rid}`))
  await page.goto(`${a.url}/ui/referrals`)
  const mine = page.locator(`[data-testid="referral-row"][data-referral="${id}"]`)
  assert.equal(await mine.locator('[data-testid="referral-state"]').getAttribute('data-state'), 'accepted')
  assert.deepEqual(await accessibilityProblems(page), [])
  await screenshot(page, 'referrals-out-accepted')
})
