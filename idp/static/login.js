// Login page: tab switching and the UKey client tool's signed challenge (the 「获取验证码」
// button is sms.js).
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

  // Signed-challenge login for UKey client tools (协卡助手). The contract with a tool (a browser
  // extension or the tool's page script) is two DOM events:
  //   the page dispatches  "idp:ukey-sign-request"  detail {nonce, formats}
  //   the tool dispatches  "idp:ukey-signature"     detail {certificate, signature, format, hash}
  // The tool asks the user for the PIN itself; the PIN never reaches this page or the server.
  var signForm = document.getElementById("ukey-signed-form");
  var signRow = document.getElementById("ukey-tool-row");
  var signButton = document.getElementById("ukey-sign-button");
  var signStatus = document.getElementById("ukey-tool-status");
  if (signForm && signRow && signButton) {
    signRow.hidden = false;
    var waiting = null;
    window.addEventListener("idp:ukey-signature", function (e) {
      var d = e.detail || {};
      if (!waiting || !d.signature) { return; }
      clearTimeout(waiting); waiting = null;
      ["certificate", "signature", "format", "hash"].forEach(function (name) {
        if (d[name]) { signForm.querySelector("input[name=" + name + "]").value = d[name]; }
      });
      signForm.submit();
    });
    signButton.addEventListener("click", function () {
      var body = new URLSearchParams();
      body.set("csrf_token", signForm.querySelector("input[name=csrf_token]").value);
      signStatus.textContent = "正在等待「协卡助手」签名…";
      fetch(signForm.getAttribute("data-challenge"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-Requested-With": "fetch" }
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (!data.ok) { signStatus.textContent = data.message; return; }
        signForm.querySelector("input[name=nonce]").value = data.nonce;
        waiting = setTimeout(function () {
          waiting = null;
          signStatus.textContent = "未检测到「协卡助手」，请先安装客户端工具。";
        }, 5000);
        window.dispatchEvent(new CustomEvent("idp:ukey-sign-request",
          { detail: { nonce: data.nonce, formats: data.formats } }));
      }).catch(function () { signStatus.textContent = "网络异常，请稍后重试"; });
    });
  }
})();
