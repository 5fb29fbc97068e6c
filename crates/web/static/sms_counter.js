// Shows, as the user types, how an SMS goes out: characters, GSM-7 or UCS-2, and segments.
// Agrees with casecast_core::sms::analyse (a unit test of casecast-web reads the tables below):
// GSM-7 holds 160 septets in one SMS and 153 per part, extension characters take two septets;
// UCS-2 holds 70 UTF-16 units and 67 per part; a character never straddles two parts.
//
// Counts the case page's message box (#sms-text into #sms-counter) and every textarea with a
// data-counter attribute (the id of its counter); window.casecastSmsCounter(textarea, out)
// attaches one added later, and window.casecastSmsAnalyse(text) counts any text.
(function () {
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";

  function septets(c) {
    if (BASIC.indexOf(c) >= 0) return 1;
    if (EXTENSION.indexOf(c) >= 0) return 2;
    return 0;
  }

  function analyse(s) {
    var chars = Array.from(s);
    var gsm = chars.every(function (c) { return septets(c) > 0; });
    var size = function (c) { return gsm ? septets(c) : c.length; };
    var units = 0;
    chars.forEach(function (c) { units += size(c); });
    var single = gsm ? 160 : 70;
    var multi = gsm ? 153 : 67;
    if (units <= single) {
      return { chars: chars.length, gsm: gsm, units: units, segments: 1, left: single - units };
    }
    var segments = 1;
    var used = 0;
    chars.forEach(function (c) {
      var n = size(c);
      if (used + n > multi) { segments += 1; used = 0; }
      used += n;
    });
    return { chars: chars.length, gsm: gsm, units: units, segments: segments, left: multi - used };
  }

  function attach(text, out) {
    if (!text || !out) return;
    var max = parseInt(text.getAttribute("maxlength"), 10) || 0;
    function show() {
      var a = analyse(text.value.replace(/\r\n/g, "\n"));
      var parts = [
        a.chars + (max ? " / " + max : "") + " characters",
        a.gsm ? "GSM-7" : "UCS-2 (a character outside GSM-7: 70 per SMS)",
        a.segments + (a.segments === 1 ? " SMS" : " SMS parts"),
        a.left + (a.gsm ? " septets" : " units") + " left in " + (a.segments === 1 ? "this SMS" : "the last part")
      ];
      out.textContent = parts.join(" · ");
      out.setAttribute("data-segments", String(a.segments));
      out.setAttribute("data-encoding", a.gsm ? "gsm7" : "ucs2");
      out.classList.toggle("over", max > 0 && a.chars > max);
    }
    text.addEventListener("input", show);
    show();
  }

  window.casecastSmsCounter = attach;
  window.casecastSmsAnalyse = analyse;
  attach(document.getElementById("sms-text"), document.getElementById("sms-counter"));
  document.querySelectorAll("textarea[data-counter]").forEach(function (t) {
    attach(t, document.getElementById(t.getAttribute("data-counter")));
  });
})();
