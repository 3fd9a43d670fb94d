// The 「获取验证码」 buttons (login, committee registration, 用户名查询): a button with
// data-sms-for="<input id>" and formaction="<endpoint>" posts that phone number with the form's
// CSRF token, shows the answer beside the field and counts down to the next allowed send.
// Everything works without this script too (the button then posts the whole form).
(function () {
  "use strict";
  document.querySelectorAll("button[data-sms-for]").forEach(function (button) {
    var form = button.form;
    var input = document.getElementById(button.getAttribute("data-sms-for"));
    if (!form || !input) { return; }
    var error = document.getElementById(input.id + "-error");
    var notice = document.getElementById("sms-notice");
    var label = button.textContent;

    function countdown(seconds) {
      var left = seconds;
      button.disabled = true;
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
      body.set(input.name, input.value);
      body.set("csrf_token", form.querySelector("input[name=csrf_token]").value);
      fetch(button.getAttribute("formaction"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-Requested-With": "fetch" }
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (error) { error.textContent = data.ok ? "" : data.message; }
        input.setAttribute("aria-invalid", data.ok ? "false" : "true");
        if (data.ok && notice) { notice.hidden = false; notice.textContent = data.message; }
        if (data.wait) { countdown(data.wait); }
      }).catch(function () { if (error) { error.textContent = "网络异常，请稍后重试"; } });
    });
  });
})();
