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

  function value(q, suffix) {
    var el = q.querySelector("[name$='" + suffix + "']");
    return el ? el.value.replace(/\r\n/g, "\n").trim() : "";
  }

  // "value | text | synonyms" lines: the text (else the value) of each option.
  function options(text) {
    return text.split("\n").filter(function (l) { return l.trim() !== ""; }).map(function (l, i) {
      var parts = l.split("|");
      var label = (parts[1] || "").trim() || parts[0].trim();
      return (i + 1) + ". " + label;
    });
  }

  function count(q, first) {
    var out = q.querySelector(".message-counter");
    if (!out || !window.casecastSmsAnalyse) return;
    var idx = q.getAttribute("data-index");
    var message = value(q, "q" + idx + ".text");
    var type = q.querySelector("select[name$='.type']");
    if (type && type.value === "choice") {
      message += "\n" + options(value(q, "q" + idx + ".choices")).join(" ");
    }
    var intro = document.getElementById("intro");
    if (first && intro && intro.value.trim() !== "") {
      message = intro.value.replace(/\r\n/g, "\n").trim() + "\n" + message;
    }
    var a = window.casecastSmsAnalyse(message);
    var max = parseInt(out.closest("form").getAttribute("data-max-chars"), 10) || 0;
    out.textContent = (first ? "First message as sent (intro and question)" : "Question as sent") +
      ", default text: " + a.chars + (max ? " / " + max : "") + " characters · " +
      (a.gsm ? "GSM-7" : "UCS-2") + " · " + a.segments + (a.segments === 1 ? " SMS" : " SMS parts");
    out.setAttribute("data-segments", String(a.segments));
    out.setAttribute("data-encoding", a.gsm ? "gsm7" : "ucs2");
    out.classList.toggle("over", max > 0 && a.chars > max);
  }

  function countAll() {
    questions().forEach(function (q, i) { count(q, i === 0); });
  }

  form.addEventListener("input", countAll);
  form.addEventListener("change", countAll);

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
    countAll();
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
    countAll();
  });

  countAll();
})();
