// Show server errors from htmx requests (403, 404, 409, 500) instead of failing silently.
document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
  const message = doc.querySelector(".error-message")?.textContent || `Request failed (${xhr.status}).`;
  const flash = document.getElementById("flash");
  if (!flash) return;
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = message;
  flash.replaceChildren(p);
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
