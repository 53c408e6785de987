/* Refreshes AI status badges: polls each badge's JSON status URL while its job is
   unfinished and swaps in the fresh badge the server renders. No build step.
   Only same-origin status URLs are fetched (and only same-origin answers used):
   the badge HTML is inserted as HTML, so it must come from this site. */
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var STREAMING_INTERVAL_MS = 500;  /* a streamed answer's text grows every 0.5 s */

  function sameOriginUrl(raw) {
    var url;
    try { url = new URL(raw, window.location.href); } catch (e) { return null; }
    return url.origin === window.location.origin ? url.href : null;
  }

  function poll(badge) {
    var url = sameOriginUrl(badge.getAttribute("data-status-url") || "");
    if (!url) { return; }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok || (response.url && !sameOriginUrl(response.url))) { return null; }
          return response.json();
        })
        .then(function (data) {
          if (!data || !data.html) { return; }  /* no access or gone: stop polling */
          var holder = document.createElement("span");
          holder.innerHTML = data.html.trim();
          var fresh = holder.firstElementChild;
          if (!fresh) { return; }
          badge.replaceWith(fresh);
          poll(fresh);
        })
        .catch(function () { poll(badge); });  /* network blip: try again */
    }, badge.classList.contains("ai-status--streaming") ? STREAMING_INTERVAL_MS : INTERVAL_MS);
  }

  function start() {
    document.querySelectorAll(".ai-status[data-status-url]").forEach(poll);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
