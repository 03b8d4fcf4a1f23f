// Specimen labels: the print button (the page prints without it, from the
// browser's menu).
for (const button of document.querySelectorAll('[data-print]')) {
  button.addEventListener('click', () => window.print())
}
