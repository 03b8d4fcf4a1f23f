// Wardline's only script: the design system's components, and live regions.
// Pages work without it (forms post, links navigate); with it, an element
// with data-live="URL" is re-fetched from URL whenever the record changes
// (server-sent events from /ui/events), so a bed board follows admissions,
// transfers and discharges from any source without a reload; an element with
// data-fragment="URL" (a part of the page too slow to hold the page up for,
// such as the chart's duplicate check) is filled from URL once the page has
// loaded, and keeps its no-script link if that fails.
import { initAll } from './nhsuk/nhsuk-frontend.min.js'

// The design system's template marks the body from an inline script, which
// the Content-Security-Policy does not allow: this module does it, before
// the components start (without the class, initAll starts none of them).
document.body.classList.add('nhsuk-frontend-supported')
initAll()

for (const el of document.querySelectorAll('[data-fragment]')) {
  fetch(el.dataset.fragment, { credentials: 'same-origin' })
    .then(async (r) => {
      if (r.ok) {
        el.innerHTML = await r.text()
        el.setAttribute('data-loaded', 'true')
      }
    })
    .catch(() => {})
}

const regions = document.querySelectorAll('[data-live]')
if (regions.length > 0 && 'EventSource' in window) {
  let running = false
  let again = false
  const refresh = async () => {
    if (running) {
      again = true
      return
    }
    running = true
    try {
      for (const el of regions) {
        const r = await fetch(el.dataset.live, { credentials: 'same-origin' })
        if (r.ok) {
          el.innerHTML = await r.text()
        }
      }
      for (const t of document.querySelectorAll('[data-updated-at]')) {
        t.textContent = new Date().toLocaleTimeString('en-GB')
      }
    } finally {
      running = false
      if (again) {
        again = false
        refresh()
      }
    }
  }
  const events = new EventSource('/ui/events')
  events.addEventListener('change', refresh)
  events.addEventListener('open', () => document.body.setAttribute('data-live-connected', 'true'))
}
