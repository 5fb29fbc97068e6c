// Keeps the statuses of the case page's messages current: while one may still change (queued,
// sending, or sent and awaiting its delivery report), polls the table's `data-status-url`
// and updates each row (`data-message-id`) in place, every 2 s at first and less often as
// time goes on; stops when none can change, or after ten minutes (a reload starts again).
(function () {
  var table = document.querySelector("table[data-status-url]");
  if (!table) return;
  var url = table.getAttribute("data-status-url");
  var started = Date.now();
  var wait = 2000;
  function show(m) {
    var row = table.querySelector('tr[data-message-id="' + m.id + '"]');
    if (!row) return;
    var status = row.querySelector("span.status");
    if (status && status.textContent !== m.status) {
      status.textContent = m.status;
      status.className = "status status-" + m.status;
    }
    var error = row.querySelector("span.message-error");
    if (error && error.textContent !== m.error) error.textContent = m.error;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (body) {
        body.messages.forEach(show);
        wait = Math.min(wait * 1.2, 30000);
        if (body.moving && Date.now() - started < 600000) setTimeout(poll, wait);
      })
      .catch(function () {
        if (Date.now() - started < 600000) setTimeout(poll, 5000);
      });
  }
  setTimeout(poll, 1000);
})();
