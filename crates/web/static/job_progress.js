// Follows a background job (an upload, an export) until it ends, then reloads the page to show
// its results. The page has an element `{name}-progress` with `data-status-url` and
// `data-status`, and inside it `{name}-bar`, `{name}-status`, `{name}-processed` and
// `{name}-total`.
(function () {
  var box = document.querySelector("[data-status-url]");
  if (!box) return;
  var name = box.id.replace(/-progress$/, "");
  var status = box.getAttribute("data-status");
  if (status === "done" || status === "failed") return;
  var url = box.getAttribute("data-status-url");
  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (u) {
        var bar = document.getElementById(name + "-bar");
        bar.max = Math.max(u.total_rows, 1);
        bar.value = u.processed_rows;
        document.getElementById(name + "-status").textContent = u.status;
        document.getElementById(name + "-processed").textContent = u.processed_rows;
        document.getElementById(name + "-total").textContent = u.total_rows;
        if (u.status === "done" || u.status === "failed") {
          window.location.reload();
        } else {
          setTimeout(poll, 400);
        }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 300);
})();
