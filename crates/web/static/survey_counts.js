// Keeps a survey's session counts and completion rate current: polls the box's
// `data-counts-url` every 3 s at first, less often as time goes on (at most every 30 s), and
// updates the cells in place (`data-count`, `data-field`); stops after an hour (a reload
// starts again). The responses table below is the page's own: reload to see new rows.
(function () {
  var box = document.getElementById("survey-progress");
  if (!box) return;
  var url = box.getAttribute("data-counts-url");
  var started = Date.now();
  var wait = 3000;
  function set(cell, value) {
    if (cell && cell.textContent !== value) cell.textContent = value;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (p) {
        Object.keys(p.counts).forEach(function (s) {
          set(box.querySelector('[data-count="' + s + '"]'), String(p.counts[s]));
        });
        set(box.querySelector('[data-field="total"]'), String(p.total));
        set(box.querySelector('[data-field="completion"]'), p.completion);
        wait = Math.min(wait * 1.1, 30000);
        if (Date.now() - started < 3600000) setTimeout(poll, wait);
      })
      .catch(function () {
        if (Date.now() - started < 3600000) setTimeout(poll, 10000);
      });
  }
  setTimeout(poll, wait);
})();
