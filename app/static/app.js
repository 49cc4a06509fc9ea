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
