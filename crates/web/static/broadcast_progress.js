// Keeps a broadcast's page current: polls its progress every 1.5 s while it sends (every 5 s
// while it waits for its next occurrence) and updates the status and the per-status counts of
// the broadcast and of each occurrence shown. When it ends, or a new occurrence starts, the
// page reloads to show its messages (a page that shows a final status polls no more).
(function () {
  var box = document.getElementById("broadcast-progress");
  if (!box) return;
  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  var FINAL = ["completed", "cancelled", "failed"];
  if (FINAL.indexOf(status) >= 0) return;

  function setCounts(scope, counts) {
    if (!scope) return;
    Object.keys(counts).forEach(function (s) {
      var cell = scope.querySelector('[data-count="' + s + '"]');
      if (cell) cell.textContent = String(counts[s]);
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (p) {
        var b = p.broadcast;
        // The final state is shown by the page itself (with its messages), never half-updated.
        if (FINAL.indexOf(b.status) >= 0) {
          window.location.reload();
          return;
        }
        setCounts(document.getElementById("broadcast-counts"), b.counts);
        var shown = document.getElementById("broadcast-status");
        if (shown) {
          shown.textContent = b.status;
          shown.className = "status broadcast-" + b.status;
        }
        var unknown = false;
        p.occurrences.forEach(function (o) {
          var row = document.querySelector('tr[data-occurrence="' + o.id + '"]');
          if (!row) { unknown = true; return; }
          setCounts(row, o.counts);
          ["status", "queued", "segments"].forEach(function (f) {
            var cell = row.querySelector('[data-field="' + f + '"]');
            if (cell) cell.textContent = String(o[f]);
          });
        });
        if (unknown) {
          window.location.reload();
          return;
        }
        setTimeout(poll, b.status === "sending" ? 1500 : 5000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, status === "sending" ? 1000 : 5000);
})();
