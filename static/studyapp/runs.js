// Polls each progress bar's JSON (fed by the database) until its run stops: the bar, the rate, the ETA
// and, on a run's page, its batch table; on a fine-tune's page, steps instead of images and the loss.
(function () {
  "use strict";
  var ACTIVE = { queued: true, running: true };
  var INTERVAL_MS = 2000;

  function set(box, selector, text) {
    var node = box.querySelector(selector);
    if (node) { node.textContent = text; }
  }

  function showNumber(box, name, value, digits) {
    var holder = box.querySelector(".run-" + name + "-box");
    if (!holder) { return; }
    holder.hidden = !value;
    if (value) { set(box, ".run-" + name, value.toFixed(digits)); }
  }

  function renderBatches(rows) {
    rows.forEach(function (row) {
      var line = document.querySelector('tr[data-batch="' + row.id + '"]');
      if (!line) { return; }
      ["state", "attempts", "worker", "heartbeat", "error"].forEach(function (name) {
        var cell = line.querySelector('[data-field="' + name + '"]');
        if (cell) { cell.textContent = row[name]; }
      });
      var state = line.querySelector('[data-field="state"]');
      if (state) { state.className = "state-" + row.state; }
    });
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
    showNumber(box, "rate", data.images_per_second || data.steps_per_second, 2);
    showNumber(box, "loss", data.loss, 4);
    showNumber(box, "eta", data.eta_seconds, 0);
    if (data.batch_rows) { renderBatches(data.batch_rows); }
    box.dataset.state = data.state;
    box.dataset.polls = String(Number(box.dataset.polls || 0) + 1);
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
