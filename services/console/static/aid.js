// Campaign aid (/aid, /aid/receipts): enhancements of pages that work without JavaScript. Ticking every child of the
// page who can be given the aid at once, and a button that prints the receipts.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const shown of document.querySelectorAll(".js-only[hidden]")) {
    shown.hidden = false;
  }
  const all = document.querySelector("input[data-tick-all]");
  if (all) {
    all.addEventListener("change", () => {
      for (const child of all.form.querySelectorAll("input[name=child]:not(:disabled)")) {
        child.checked = all.checked;
      }
    });
  }
  for (const button of document.querySelectorAll("button[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
});
