// Follows an upload's progress until it ends, then reloads the page to show the results.
(function () {
  var box = document.getElementById("upload-progress");
  if (!box) return;
  var status = box.getAttribute("data-status");
  if (status === "done" || status === "failed") return;
  var url = box.getAttribute("data-status-url");
  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (u) {
        var bar = document.getElementById("upload-bar");
        bar.max = Math.max(u.total_rows, 1);
        bar.value = u.processed_rows;
        document.getElementById("upload-status").textContent = u.status;
        document.getElementById("upload-processed").textContent = u.processed_rows;
        document.getElementById("upload-total").textContent = u.total_rows;
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
