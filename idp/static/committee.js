// Committee registration and changes: the term dates are shown only for 属性 = 正式.
// Everything works without this script too (the server ignores the dates for 临时).
(function () {
  "use strict";
  var terms = document.getElementById("term-fields");
  var radios = document.querySelectorAll("input[name=attribute]");
  function sync() {
    var formal = document.querySelector("input[name=attribute][value=formal]");
    if (terms && formal) { terms.hidden = !formal.checked; }
  }
  radios.forEach(function (r) { r.addEventListener("change", sync); });
  sync();
})();
