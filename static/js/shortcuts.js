// Keyboard shortcuts for the labeling page, the image grid and the verify page. htmx makes the requests;
// this only turns key presses into clicks and selections.
(function () {
  "use strict";

  function isTyping(event) {
    const t = event.target;
    if (!t || !t.tagName) return false;
    if (t.isContentEditable) return true;
    if (t.tagName === "INPUT") return t.type !== "checkbox";
    return t.tagName === "TEXTAREA" || t.tagName === "SELECT";
  }

  // A key pressed the moment a new panel arrives can come before htmx has wired up its
  // buttons, and a click then does nothing. So keys send the request themselves from
  // the button's attributes; one at a time, the next allowed as soon as a panel lands.
  let busy = false;
  document.addEventListener("htmx:afterSwap", () => { busy = false; });
  document.addEventListener("htmx:sendError", () => { busy = false; });

  function send(button) {
    if (busy) return;
    busy = true;
    htmx.ajax("POST", button.getAttribute("hx-post"), {
      source: button,
      target: "#annotation-panel",
      swap: "outerHTML",
      values: JSON.parse(button.getAttribute("hx-vals") || "{}"),
      headers: JSON.parse(document.body.getAttribute("hx-headers") || "{}"),
    }).finally(() => { busy = false; });
  }

  // Multi-label: a tag's key ticks or unticks it, Enter saves the form (every tag's
  // state, ticked present and the rest absent), from the form's own attributes.
  function tagKeys(event, form) {
    if (event.key === "Enter") {
      event.preventDefault();
      if (event.repeat || busy) return;
      busy = true;
      htmx.ajax("POST", form.getAttribute("hx-post"), {
        source: form,
        target: "#annotation-panel",
        swap: "outerHTML",
        headers: JSON.parse(document.body.getAttribute("hx-headers") || "{}"),
      }).finally(() => { busy = false; });
      return true;
    }
    if (event.ctrlKey || event.key.length !== 1 || event.key === " ") return false;
    const key = CSS.escape(event.key.toLowerCase());
    const toggle = form.querySelector('.tag-toggle[data-key="' + key + '"] input');
    if (!toggle) return false;
    event.preventDefault();
    if (!event.repeat) toggle.checked = !toggle.checked;
    return true;
  }

  function labelKeys(event, panel) {
    const tagForm = panel.querySelector("#tag-form");
    if (tagForm && tagKeys(event, tagForm)) return;
    let button = null;
    if (event.key === " ") {
      button = panel.querySelector('[data-action="skip"]');
    } else if (event.key === "Enter") {
      // Accept the model's suggestion: the same request as that class's own key. With
      // no suggestion, Enter does nothing (and never clicks a focused button).
      button = panel.querySelector(".class-button.suggested");
      if (!button) {
        event.preventDefault();
        return;
      }
    } else if (event.key === "Backspace" || (event.ctrlKey && event.key.toLowerCase() === "z")) {
      button = panel.querySelector('[data-action="undo"]');
    } else if (!event.ctrlKey && event.key.length === 1) {
      const key = CSS.escape(event.key.toLowerCase());
      button = panel.querySelector('.class-button[data-key="' + key + '"]');
    }
    if (!button) return;
    event.preventDefault();
    // A held-down key would label a run of images nobody looked at.
    if (!event.repeat) send(button);
  }

  function columns(boxes) {
    const top = boxes[0].closest(".tile").offsetTop;
    const n = boxes.findIndex((b) => b.closest(".tile").offsetTop !== top);
    return n < 0 ? boxes.length : n;
  }

  // Tiles of the grid and of the verify page: arrow keys move between them (Space, the
  // checkbox's own key, ticks), Shift+A ticks or unticks all. True when it was one.
  function tileKeys(event, root, boxes) {
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(boxes), ArrowUp: -columns(boxes) };
    if (event.key in moves) {
      const i = boxes.indexOf(document.activeElement);
      const j = i < 0 ? 0 : Math.max(0, Math.min(boxes.length - 1, i + moves[event.key]));
      boxes[j].focus();
    } else if (event.shiftKey && event.key.toLowerCase() === "a") {
      const all = boxes.every((b) => b.checked);
      boxes.forEach((b) => { b.checked = !all; });
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  // The verify page: Enter accepts the ticked suggestions (once: a held key does not
  // accept the next page unseen).
  function verifyKeys(event, panel) {
    const boxes = Array.from(panel.querySelectorAll('.tile input[type="checkbox"]'));
    if (!boxes.length || tileKeys(event, panel, boxes)) return;
    if (event.key === "Enter" && !event.ctrlKey && !event.shiftKey) {
      event.preventDefault();
      const form = panel.querySelector("#verify-form");
      if (form && !event.repeat && !busy) {
        busy = true;
        form.requestSubmit();
      }
    }
  }

  function gridKeys(event, grid) {
    const boxes = Array.from(grid.querySelectorAll('.tile input[type="checkbox"]'));
    if (!boxes.length || tileKeys(event, grid, boxes)) return;
    if (!event.ctrlKey && !event.shiftKey && event.key.length === 1 && event.key !== " ") {
      const key = CSS.escape(event.key.toLowerCase());
      const option = grid.querySelector('#assign-class option[data-key="' + key + '"]');
      if (option && boxes.some((b) => b.checked)) {
        option.selected = true;
        event.preventDefault();
        grid.querySelector("#assign-form").requestSubmit();
      }
    }
  }

  // Prediction and review cards: keys act on the highlighted card, the first one still
  // waiting for a decision in the page, or the one clicked (Enter confirms or keeps, a
  // class key corrects or relabels). Decided cards have no data-pending and no keys.
  let chosen = null;
  function lists() {
    return Array.from(document.querySelectorAll('[data-shortcuts="cards"]'));
  }
  function highlight() {
    const all = lists();
    let card = chosen && chosen.isConnected && chosen.hasAttribute("data-pending") ? chosen : null;
    if (!card) {
      chosen = null;
      card = all.map((list) => list.querySelector(".card[data-pending]")).find(Boolean) || null;
    }
    all.forEach((list) => list.querySelectorAll(".card.current").forEach((c) => {
      if (c !== card) c.classList.remove("current");
    }));
    if (card) card.classList.add("current");
    return card;
  }
  document.addEventListener("htmx:afterSettle", highlight);
  document.addEventListener("DOMContentLoaded", highlight);
  document.addEventListener("click", (event) => {
    const card = event.target.closest && event.target.closest('[data-shortcuts="cards"] .card[data-pending]');
    if (card) {
      chosen = card;
      highlight();
    }
  });

  function cardKeys(event) {
    const card = highlight();
    if (!card || event.ctrlKey || event.repeat) return;
    const key = CSS.escape(event.key.toLowerCase());
    const button = card.querySelector('button[data-key="' + key + '"]');
    if (!button) return;
    event.preventDefault();
    if (busy) return;
    busy = true;
    htmx.ajax("POST", button.getAttribute("hx-post"), {
      source: button,
      target: card,
      swap: "outerHTML",
      values: JSON.parse(button.getAttribute("hx-vals") || "{}"),
      headers: JSON.parse(document.body.getAttribute("hx-headers") || "{}"),
    }).finally(() => { busy = false; });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.metaKey || isTyping(event)) return;
    const panel = document.querySelector('[data-shortcuts="label"]');
    if (panel) return labelKeys(event, panel);
    const grid = document.querySelector('[data-shortcuts="grid"]');
    if (grid) return gridKeys(event, grid);
    const verify = document.querySelector('[data-shortcuts="verify"]');
    if (verify) return verifyKeys(event, verify);
    if (lists().length) return cardKeys(event);
  });
})();
