// The set-up page's data-collection monitor: re-reads its JSON every few seconds and fills the table in.
(function () {
  "use strict";
  var INTERVAL_MS = 5000;
  var box = document.getElementById("monitor");
  if (!box) { return; }

  function shown(name, value) {
    if (name === "projected_finish") {
      return value ? new Date(value).toLocaleString() : "no answers in the last hour";
    }
    return String(value);
  }

  function render(data) {
    box.querySelectorAll("[data-field]").forEach(function (cell) {
      cell.textContent = shown(cell.dataset.field, data[cell.dataset.field]);
    });
    document.getElementById("monitor-updated").textContent = "as of " + new Date(data.measured_at).toLocaleTimeString();
    box.dataset.refreshed = String(Number(box.dataset.refreshed || 0) + 1);
  }

  function poll() {
    fetch(box.dataset.monitorUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) { render(data); } })
      .catch(function () { return null; })
      .then(function () { window.setTimeout(poll, INTERVAL_MS); });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
