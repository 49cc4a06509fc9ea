// --- Toasts: flashes (rendered by the server), htmx events and request errors -----------
// A notice leaves by itself after #flash's data-notice-ms (not while pointed at or
// focused); an error stays until dismissed. Each has a dismiss button; Escape dismisses
// the newest.
const noticeMs = () => Number(document.getElementById("flash")?.dataset.noticeMs) || 8000;

function dismissToast(toast) {
  if (!toast?.isConnected) return;
  const hadFocus = toast.contains(document.activeElement);
  toast.remove();
  if (hadFocus) document.getElementById("main")?.focus();
}

function armToast(toast) {
  if (toast.dataset.armed) return;
  toast.dataset.armed = "1";
  if (toast.dataset.kind !== "notice") return;
  let timer = null;
  const start = () => { timer = setTimeout(() => dismissToast(toast), noticeMs()); };
  const hold = () => clearTimeout(timer);
  toast.addEventListener("mouseenter", hold);
  toast.addEventListener("focusin", hold);
  toast.addEventListener("mouseleave", start);
  toast.addEventListener("focusout", start);
  start();
}

function armToasts(root) {
  root.querySelectorAll?.(".toast").forEach(armToast);
}

// Shows a toast made from the same markup as the server's (templates/_toast.html).
function showToast(kind, text) {
  const box = document.getElementById("flash");
  const template = document.getElementById("toast-template");
  if (!box || !template) return;
  const toast = template.content.firstElementChild.cloneNode(true);
  const error = kind === "error";
  toast.className = `toast toast-${error ? "error" : "notice"}`;
  toast.dataset.kind = error ? "error" : "notice";
  if (error) toast.setAttribute("role", "alert");
  toast.querySelector(".toast-icon").textContent = error ? "!" : "✓";
  toast.querySelector(".toast-label").textContent = error ? "Error: " : "Notice: ";
  toast.querySelector(".toast-text").textContent = text;
  box.append(toast);
  armToast(toast);
}

document.addEventListener("DOMContentLoaded", () => armToasts(document));
document.addEventListener("htmx:load", (event) => armToasts(event.target));
document.addEventListener("click", (event) => {
  const close = event.target.closest?.(".toast-close");
  if (close) dismissToast(close.closest(".toast"));
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const toasts = document.querySelectorAll("#flash .toast");
  if (toasts.length) dismissToast(toasts[toasts.length - 1]);
});
// Flashes made while answering an htmx request with a fragment (app/web/toasts.py).
document.addEventListener("smsops-toast", (event) => {
  for (const t of event.detail?.toasts || []) showToast(t.kind, t.text);
});

// Show server errors from htmx requests (403, 404, 409, 500) instead of failing silently.
document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  const message = doc.querySelector(".error-message")?.textContent || `Request failed (${xhr.status}).`;
  showToast("error", message.trim());
});

// Narrow screens: the Menu button shows and hides the navigation (CSS folds it away).
document.addEventListener("click", (event) => {
  const button = event.target.closest?.(".menu-toggle");
  if (!button) return;
  const nav = document.getElementById(button.getAttribute("aria-controls"));
  if (!nav) return;
  const open = nav.classList.toggle("open");
  button.setAttribute("aria-expanded", String(open));
});

// The navigation scrolls on its own when taller than the window: bring the current
// page's link into its view (a third of the way down), so the place is always shown.
// Only the navigation scrolls, never the page.
document.addEventListener("DOMContentLoaded", () => {
  const nav = document.getElementById("sidenav");
  const current = nav?.querySelector("a[aria-current]");
  if (!current || nav.scrollHeight <= nav.clientHeight) return;
  const offset = current.getBoundingClientRect().top - nav.getBoundingClientRect().top;
  const visible = Math.min(nav.clientHeight, window.innerHeight - nav.getBoundingClientRect().top);
  if (offset >= 0 && offset + current.offsetHeight <= visible) return;  // in view already
  nav.scrollTop += offset - visible / 3;
});

// Uploads sent by htmx from a form[data-upload-progress] (a bulk task's file): how much
// is sent, then that the server is checking it (which takes seconds for a big file).
// The response's own download fires the same event: ignored once the upload is done.
document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.target.matches?.("form[data-upload-progress]")) delete event.target.dataset.uploaded;
});
document.addEventListener("htmx:xhr:progress", (event) => {
  const form = event.target.closest?.("form[data-upload-progress]");
  const state = form?.querySelector(".upload-state");
  if (!state || form.dataset.uploaded || !event.detail.total) return;
  const bar = state.querySelector("progress");
  const text = state.querySelector(".upload-text");
  const percent = Math.floor((100 * event.detail.loaded) / event.detail.total);
  state.hidden = false;
  if (percent < 100) {
    bar.value = percent;
    text.textContent = `Uploading… ${percent}%`;
  } else {
    form.dataset.uploaded = "1";
    bar.removeAttribute("value");  // indeterminate: the rows are being checked
    text.textContent = "Uploaded; checking every row…";
  }
});
// Refused without a form to show (too large, a server error: told in a toast).
document.addEventListener("htmx:afterRequest", (event) => {
  const state = event.target.matches?.("form[data-upload-progress]")
    && event.target.querySelector(".upload-state");
  if (state && event.detail.failed) state.hidden = true;
});

// A table wider than a phone scrolls sideways inside its card (style.css); one that does
// is made a keyboard stop named after its caption or heading, so what is off to the side
// can be reached without a mouse (axe: scrollable-region-focusable). Done again after a
// swap and when the width changes; a table that fits again is no stop.
function markScrollingTables() {
  document.querySelectorAll("main table").forEach((table) => {
    const scrolls = table.scrollWidth > table.clientWidth + 1
      && getComputedStyle(table).overflowX !== "visible";
    if (scrolls && table.dataset.scrollStop !== "1") {
      const heading = table.caption?.textContent
        || table.closest("section, .card")?.querySelector("h1, h2, h3")?.textContent
        || document.querySelector("main h1")?.textContent || "Table";
      table.dataset.scrollStop = "1";
      table.tabIndex = 0;  // a table still (no role given): read as one
      table.setAttribute("aria-label", `${heading.trim()} (scrolls sideways)`);
    } else if (!scrolls && table.dataset.scrollStop === "1") {
      delete table.dataset.scrollStop;
      table.removeAttribute("tabindex");
      table.removeAttribute("aria-label");
    }
  });
}
document.addEventListener("DOMContentLoaded", markScrollingTables);
document.addEventListener("htmx:afterSettle", markScrollingTables);
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(markScrollingTables, 150);
});
