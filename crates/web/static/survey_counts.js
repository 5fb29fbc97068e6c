// Keeps a survey's session counts and completion rate current: polls the box's
// `data-counts-url` every 3 s at first, less often as time goes on (at most every 30 s), and
// updates the cells in place (`data-count`, `data-field`); stops after an hour (a reload
// starts again). The responses table below is the page's own: when the counts change, a
// notice above it says to reload to see the new rows.
(function () {
  var box = document.getElementById("survey-progress");
  if (!box) return;
  var url = box.getAttribute("data-counts-url");
  var started = Date.now();
  var wait = 3000;
  var shown = null;
  var stale = document.getElementById("responses-stale");
  function set(cell, value) {
    if (cell && cell.textContent !== value) cell.textContent = value;
  }
  // The counts as the server drew them with the table, in the JSON's shape.
  function initial() {
    var counts = {};
    box.querySelectorAll("[data-count]").forEach(function (cell) {
      counts[cell.getAttribute("data-count")] = Number(cell.getAttribute("data-initial"));
    });
    return canonical(counts);
  }
  // Counts as text, keys sorted: the same counts give the same text whatever their order.
  function canonical(counts) {
    return Object.keys(counts).sort().map(function (k) {
      return k + "=" + Number(counts[k]);
    }).join(",");
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
        var now = canonical(p.counts);
        if (shown === null) shown = initial();
        if (stale && now !== shown) stale.hidden = false;
        wait = Math.min(wait * 1.1, 30000);
        if (Date.now() - started < 3600000) setTimeout(poll, wait);
      })
      .catch(function () {
        if (Date.now() - started < 3600000) setTimeout(poll, 10000);
      });
  }
  setTimeout(poll, wait);
})();
