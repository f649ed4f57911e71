// Refreshes the live part of a page (<main>) every few seconds with plain fetch, unless
// paused (the choice is remembered in this browser). No build step, no dependencies.
(function () {
  "use strict";
  var body = document.body;
  var seconds = parseInt(body.getAttribute("data-refresh") || "0", 10);
  var button = document.getElementById("refresh-toggle");
  if (!seconds || !button || !window.fetch) { return; }
  var key = "pgwerk-refresh-paused";
  function paused() { return window.localStorage.getItem(key) === "1"; }
  function label() {
    button.textContent = paused() ? "Resume auto-refresh" : "Pause auto-refresh";
    button.setAttribute("aria-pressed", paused() ? "true" : "false");
  }
  button.hidden = false;
  label();
  button.addEventListener("click", function () {
    window.localStorage.setItem(key, paused() ? "0" : "1");
    label();
  });
  function refresh() {
    if (paused() || document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = fresh.querySelector("main");
        if (!main) { window.location.reload(); return; }
        document.querySelector("main").replaceWith(document.importNode(main, true));
        document.title = fresh.title;
      })
      .catch(function () { /* the server is away; try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
