// Login page: tab switching and the 「获取验证码」 button with a countdown.
// Everything works without this script too (plain form posts); it only saves page reloads.
(function () {
  "use strict";
  var tabs = document.querySelectorAll(".tabs .tab");
  function show(id) {
    tabs.forEach(function (t) { t.classList.toggle("active", t.getAttribute("href") === "#" + id); });
    document.querySelectorAll(".panel").forEach(function (p) { p.classList.toggle("active", p.id === id); });
  }
  tabs.forEach(function (t) {
    t.addEventListener("click", function (e) { e.preventDefault(); show(t.getAttribute("href").slice(1)); });
  });
  if (location.hash === "#panel-ukey") { show("panel-ukey"); }

  var button = document.getElementById("send-sms");
  if (!button) { return; }
  var form = document.getElementById("login-form");
  var phone = document.getElementById("phone");
  var phoneError = document.getElementById("phone-error");
  var notice = document.getElementById("sms-notice");
  var label = button.textContent;

  function countdown(seconds) {
    button.disabled = true;
    var left = seconds;
    button.textContent = left + "秒后重新获取";
    var timer = setInterval(function () {
      left -= 1;
      if (left <= 0) { clearInterval(timer); button.disabled = false; button.textContent = label; return; }
      button.textContent = left + "秒后重新获取";
    }, 1000);
  }

  button.addEventListener("click", function (e) {
    e.preventDefault();
    var body = new URLSearchParams();
    body.set("phone", phone.value);
    body.set("csrf_token", form.querySelector("input[name=csrf_token]").value);
    fetch(button.getAttribute("formaction"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-Requested-With": "fetch" }
    }).then(function (r) { return r.json(); }).then(function (data) {
      phoneError.textContent = data.ok ? "" : data.message;
      phone.setAttribute("aria-invalid", data.ok ? "false" : "true");
      if (data.ok) { notice.hidden = false; notice.textContent = data.message; }
      if (data.wait) { countdown(data.wait); }
    }).catch(function () { phoneError.textContent = "网络异常，请稍后重试"; });
  });
})();
