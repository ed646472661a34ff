// roomd console: refreshes each page's live part in place, and asks before what cannot be
// undone. Plain script, no library; the pages work without it (reload to refresh).
(function () {
  "use strict";

  // Forms marked data-confirm ask first (End room, Delete recording).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var live = document.getElementById("live");
  if (!live || !live.getAttribute("data-live")) {
    return;
  }
  var url = live.getAttribute("data-live");
  var EVERY_MS = 2000;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "follow" })
      .then(function (response) {
        if (response.redirected) {
          // The session ended: show the sign-in page.
          window.location.assign(response.url);
          return null;
        }
        if (!response.ok) {
          return null;
        }
        var digest = response.headers.get("X-Console-Digest");
        if (digest && digest === live.getAttribute("data-digest")) {
          return null;
        }
        return response.text().then(function (html) {
          var focused = document.activeElement && document.activeElement.id;
          live.innerHTML = html;
          live.setAttribute("data-digest", digest || "");
          if (focused) {
            var again = document.getElementById(focused);
            if (again) {
              again.focus();
            }
          }
        });
      })
      .catch(function () {})
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", refresh);
})();
