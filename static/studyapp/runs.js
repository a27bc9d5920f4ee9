// Polls each progress bar's JSON (fed by the database) until its run stops.
(function () {
  "use strict";
  var ACTIVE = { queued: true, running: true };
  var INTERVAL_MS = 2000;

  function set(box, selector, text) {
    var node = box.querySelector(selector);
    if (node) { node.textContent = text; }
  }

  function render(box, data) {
    var bar = box.querySelector("progress");
    bar.max = data.total || 1;
    bar.value = data.done;
    var state = box.querySelector(".run-state");
    state.textContent = data.state;
    state.className = "run-state state-" + data.state;
    set(box, ".run-done", data.done);
    set(box, ".run-total", data.total);
    box.dataset.state = data.state;
    var error = document.querySelector(".run-error");
    if (error && data.error) { error.textContent = data.error; error.hidden = false; }
  }

  function poll(box) {
    if (!ACTIVE[box.dataset.state]) { return; }
    fetch(box.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) { render(box, data); }
        if (data && !ACTIVE[data.state] && document.querySelector(".run-actions")) { window.location.reload(); return; }
        window.setTimeout(function () { poll(box); }, INTERVAL_MS);
      })
      .catch(function () { window.setTimeout(function () { poll(box); }, INTERVAL_MS * 3); });
  }

  document.querySelectorAll(".run-progress").forEach(function (box) {
    window.setTimeout(function () { poll(box); }, INTERVAL_MS);
  });
})();
