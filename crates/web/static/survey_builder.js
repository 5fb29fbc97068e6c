// The survey builder without round trips: "Add question" adds a question's fields from the
// page's <template id="question-template"> (its field names carry __Q__ for the index), and
// "Remove question" removes its fieldset. Without this script the same buttons post the form,
// and the server shows it again with the question added or removed. The live character,
// encoding and segment counts of every text come from sms_counter.js.
(function () {
  var form = document.getElementById("survey-form");
  var list = document.getElementById("questions");
  var tpl = document.getElementById("question-template");
  var add = document.getElementById("add-question");
  if (!form || !list || !tpl || !add) return;

  function questions() {
    return list.querySelectorAll("fieldset.question");
  }

  function renumber() {
    questions().forEach(function (q, i) {
      var n = q.querySelector(".question-number");
      if (n) n.textContent = String(i + 1);
      var b = q.querySelector(".remove-question");
      if (b) b.textContent = "Remove question " + (i + 1);
    });
  }

  // A new index, above every index in use (the server orders questions by index).
  function nextIndex() {
    var max = -1;
    questions().forEach(function (q) {
      var i = parseInt(q.getAttribute("data-index"), 10);
      if (!isNaN(i) && i > max) max = i;
    });
    return max + 1;
  }

  add.addEventListener("click", function (event) {
    var limit = parseInt(add.getAttribute("data-max"), 10) || 50;
    if (questions().length >= limit) return; // the server says why
    event.preventDefault();
    var holder = document.createElement("div");
    holder.innerHTML = tpl.innerHTML.split("__Q__").join(String(nextIndex()));
    var q = holder.querySelector("fieldset.question");
    list.appendChild(q);
    q.querySelectorAll("textarea[data-counter]").forEach(function (t) {
      if (window.casecastSmsCounter) {
        window.casecastSmsCounter(t, document.getElementById(t.getAttribute("data-counter")));
      }
    });
    renumber();
    var first = q.querySelector("input[type=text]");
    if (first) first.focus();
  });

  list.addEventListener("click", function (event) {
    var button = event.target.closest(".remove-question");
    if (!button) return;
    event.preventDefault();
    var q = button.closest("fieldset.question");
    if (q) q.remove();
    renumber();
  });
})();
