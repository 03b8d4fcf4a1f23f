// Wardline's only script: the design system's components, and live regions.
// Pages work without it (forms post, links navigate); with it, an element
// with data-live="URL" is re-fetched from URL whenever the record changes
// (server-sent events from /ui/events), so a bed board follows admissions,
// transfers and discharges from any source without a reload; an element with
// data-fragment="URL" (a part of the page too slow to hold the page up for,
// such as the chart's duplicate check) is filled from URL once the page has
// loaded, and keeps its no-script link if that fails; and a form with
// data-live-questions="ID" (a clinical form being filled in) asks the server
// for its questions again each time an answer changes, so the questions an
// answer enables or disables (the form's enableWhen, decided on the server)
// appear or go at once instead of after an "Update the questions" button.
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

// Elements only for pages without the script (e.g. "Update the questions").
for (const el of document.querySelectorAll('[data-no-script-only]')) {
  el.hidden = true
}

for (const form of document.querySelectorAll('form[data-live-questions]')) {
  const region = document.getElementById(form.dataset.liveQuestions)
  if (!region) continue
  let running = false
  let again = false
  const update = async () => {
    if (running) {
      again = true
      return
    }
    running = true
    try {
      const body = new URLSearchParams(new FormData(form))
      body.set('action', 'refresh')
      body.set('fragment', 'questions')
      // form.getAttribute: the form's buttons are named "action", which
      // shadows form.action.
      const r = await fetch(form.getAttribute('action'), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body
      })
      if (!r.ok) return
      const html = await r.text()
      // What was typed while the request was on its way is kept: the
      // answers now in the page are put back into the questions returned.
      const typed = new Map()
      for (const el of region.querySelectorAll('input, select, textarea')) {
        if (el.type === 'radio' || el.type === 'checkbox') {
          if (el.checked) typed.set(el.name + '=' + el.value, true)
        } else {
          typed.set(el.name, el.value)
        }
      }
      const focused = document.activeElement && document.activeElement.id
      region.innerHTML = html
      for (const el of region.querySelectorAll('input, select, textarea')) {
        if (el.type === 'radio' || el.type === 'checkbox') {
          if (typed.size > 0) el.checked = typed.has(el.name + '=' + el.value)
        } else if (typed.has(el.name)) {
          el.value = typed.get(el.name)
        }
      }
      if (focused) document.getElementById(focused)?.focus()
      form.setAttribute('data-questions-updated', String(Date.now()))
    } catch (_) {
      // The page still works: the answers are checked when it is saved.
    } finally {
      running = false
      if (again) {
        again = false
        update()
      }
    }
  }
  form.addEventListener('change', (e) => {
    if (region.contains(e.target)) update()
  })
}
