/* Once every unfinished badge on the page has finished (status.js swaps them in place),
   reload once to show the values the worker wrote; not while the form holds typed input. */
(function () {
  "use strict";
  var UNFINISHED = ".ai-status[data-status-url]";
  if (!document.querySelector(UNFINISHED)) { return; }
  var edited = false;
  document.addEventListener("input", function () { edited = true; });
  var timer = window.setInterval(function () {
    if (document.querySelector(UNFINISHED)) { return; }
    window.clearInterval(timer);
    if (!edited) { window.location.reload(); }
  }, 1000);
})();
