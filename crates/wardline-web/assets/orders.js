// Ordering and specimen labels (issue 16). Pages work without it.
//  * An input with data-reveal="ID" shows the element ID only while it is
//    checked (the questions of an imaging examination under its tick box).
//  * A button with data-print prints the page (the specimen labels).

for (const input of document.querySelectorAll('input[data-reveal]')) {
  const target = document.getElementById(input.dataset.reveal)
  if (!target) continue
  input.setAttribute('aria-controls', target.id)
  const sync = () => {
    target.hidden = !input.checked
    input.setAttribute('aria-expanded', String(input.checked))
  }
  input.addEventListener('change', sync)
  sync()
}

for (const button of document.querySelectorAll('[data-print]')) {
  button.addEventListener('click', () => window.print())
}
