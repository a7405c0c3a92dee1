// Errors of htmx requests, shown where the person acted.
//
// A view that refuses a form's input answers 400 (or 409, 422) with the same partial it
// renders on success, now holding the error beside the form and the values typed. htmx
// drops the body of every 4xx by default, so those answers are swapped in like a 200.
// Any other failure (403, 404, 500, a full error page, the network) is shown as a
// message right after the form or button that sent the request.
(function () {
  "use strict";
  const SWAPPED = [400, 409, 422];

  function isWholePage(text) {
    return /<html[\s>]/i.test(text.slice(0, 4000));
  }

  function messageOf(xhr) {
    if (!xhr || xhr.status === 0) {
      return "The server could not be reached. Check the connection and try again.";
    }
    const text = xhr.responseText || "";
    if (/<[a-z]/i.test(text)) {
      const doc = new DOMParser().parseFromString(text, "text/html");
      const marked = doc.querySelector("[data-error-message], .errorlist, .messages .error");
      if (marked && marked.textContent.trim()) return marked.textContent.trim();
    } else if (text.trim() && text.length < 500) {
      return text.trim();
    }
    if (xhr.status === 403) return "You may not do this in this project.";
    if (xhr.status === 404) return "This is no longer here; reload the page.";
    return "Something went wrong on the server (" + xhr.status + "). Try again, or reload the page.";
  }

  // The form a request came from, or its card, or the element itself.
  function anchorOf(elt) {
    if (!elt || !elt.closest || elt === document.body) return null;
    return elt.closest("form") || elt.closest(".card") || elt;
  }

  function clear(elt) {
    const anchor = anchorOf(elt);
    const next = anchor && anchor.nextElementSibling;
    if (next && next.classList.contains("request-error")) next.remove();
  }

  function show(elt, message) {
    let anchor = anchorOf(elt);
    if (!anchor || !anchor.isConnected) anchor = document.querySelector("main > :first-child");
    if (!anchor) return;
    let box = anchor.nextElementSibling;
    if (!box || !box.classList.contains("request-error")) {
      box = document.createElement("p");
      box.className = "error request-error";
      box.setAttribute("role", "alert");
      anchor.insertAdjacentElement("afterend", box);
    }
    box.textContent = message;
  }

  document.addEventListener("htmx:beforeRequest", (event) => clear(event.detail.elt));

  document.addEventListener("htmx:beforeSwap", (event) => {
    const detail = event.detail;
    const xhr = detail.xhr;
    if (SWAPPED.includes(xhr.status) && !isWholePage(xhr.responseText || "")) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    // After a refused form comes back, put the cursor in the first field to fix, unless
    // the person is already typing somewhere.
    if (!SWAPPED.includes(event.detail.xhr && event.detail.xhr.status)) return;
    const active = document.activeElement;
    if (active && active.matches && active.matches("input, select, textarea")) return;
    const invalid = document.querySelector('[aria-invalid="true"]');
    if (invalid && typeof invalid.focus === "function") invalid.focus();
  });

  document.addEventListener("htmx:responseError", (event) => {
    show(event.detail.elt, messageOf(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", (event) => show(event.detail.elt, messageOf(null)));
  document.addEventListener("htmx:timeout", (event) => show(event.detail.elt, messageOf(null)));
})();
