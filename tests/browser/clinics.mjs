// Shared by the outpatient browser tests: a clinic set up on its page.

/** Defines a clinic on /ui/clinics — every day, 00:00–23:40, 20-minute
 * new-patient face-to-face slots of General Surgery (100), valid from
 * today — and generates its slots from today for `days` more days.
 * Returns the clinic (Schedule) id. */
export async function clinicWithSlots (page, server, { name, doctor, location, days = 2 }) {
  const [y, m, d] = new Date().toISOString().slice(0, 10).split('-')
  await page.goto(`${server.url}/ui/clinics`)
  await page.fill('#name', name)
  await page.selectOption('#consultant', doctor.replace('Practitioner/', ''))
  await page.selectOption('#location', location)
  await page.fill('#specialty', '100')
  await page.fill('#specialty-name', 'General Surgery')
  for (const day of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) await page.check(`#day-${day}`)
  await page.fill('#start', '00:00')
  await page.fill('#end', '23:40')
  await page.fill('#slot-minutes', '20')
  await page.check('#kind')
  await page.check('#mode')
  await page.fill('#valid-from-day', d)
  await page.fill('#valid-from-month', m)
  await page.fill('#valid-from-year', y)
  await page.click('[data-testid="save-template"]')
  await page.waitForURL(u => u.pathname === '/ui/clinics' && u.searchParams.get('done') === 'saved')
  const clinic = new URL(page.url()).searchParams.get('clinic')
  const until = new Date(Date.now() + days * 86400000).toISOString().slice(0, 10).split('-')
  await page.fill('#from-day', d); await page.fill('#from-month', m); await page.fill('#from-year', y)
  await page.fill('#to-day', until[2]); await page.fill('#to-month', until[1]); await page.fill('#to-year', until[0])
  await page.click('[data-testid="generate"]')
  await page.waitForURL(u => u.search.includes('done=slots'))
  return clinic
}
