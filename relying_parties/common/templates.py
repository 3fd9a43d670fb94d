"""The few pages of a demo relying party, kept in Python so the package needs no data files."""

from __future__ import annotations

BASE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<link rel="stylesheet" href="{{ url_for('rp_css') }}"></head>
<body><header class="banner"><h1>{{ title }}</h1></header>
<main>{% block content %}{% endblock %}</main></body></html>"""

HOME = """{% extends "base.html" %}{% block content %}
{% if user %}
<section class="who">
  <p>当前用户：<strong class="user-name">{{ user.display_name }}</strong></p>
  <p>所属单位：<span class="org-name">{{ user.org_name }}</span></p>
  <p>角色：<span class="role">{{ user.role_label }}</span></p>
  <p>认证方式：<span class="amr">{{ user.amr_label }}</span> ({{ user.amr | join(" ") }})</p>
</section>
{% if menus %}<nav class="menus">
{% for top, groups in menus %}<details open><summary>{{ top }}</summary>
{% for group, items in groups %}<details open><summary>{{ group }}</summary><ul>
{% for label, href in items %}<li><a href="{{ href }}">{{ label }}</a></li>{% endfor %}
</ul></details>{% endfor %}</details>{% endfor %}
</nav>{% endif %}
<div class="actions">
<a class="switch" href="{{ url_for('rp_auth.login', prompt='select_account') }}">切换身份</a>
<form method="post" action="{{ url_for('rp_auth.logout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<button type="submit">退出</button></form></div>
{% else %}
<p>您尚未登录。</p>
<p><a class="login" href="{{ url_for('rp_auth.login') }}">通过统一认证登录平台登录</a></p>
{% endif %}
{% endblock %}"""

ERROR = """{% extends "base.html" %}{% block content %}
<p class="error-message">{{ message }}</p>
<p><a href="{{ url_for('rp_home') }}">返回首页</a></p>
{% endblock %}"""

STYLESHEET = """
body { margin: 0; font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
       background: #f2f5f9; color: #1d2733; font-size: 16px; line-height: 1.6; }
.banner { background: #1f5fae; color: #fff; padding: 14px 20px; }
.banner h1 { max-width: 920px; margin: 0 auto; font-size: 22px; }
main { max-width: 920px; margin: 28px auto; padding: 24px 28px; background: #fff;
       border: 1px solid #d6dce4; border-radius: 6px; }
.who p { margin: 4px 0; }
.menus { margin: 18px 0; }
.menus details { margin: 4px 0 4px 1em; }
.menus summary { font-weight: 600; cursor: pointer; }
.menus a, .switch, .login { color: #1f5fae; }
.actions { display: flex; gap: 18px; align-items: center; margin-top: 18px; }
.actions form { margin: 0; }
button { padding: 7px 18px; font-size: 16px; border-radius: 4px; border: 1px solid #1f5fae;
         background: #1f5fae; color: #fff; cursor: pointer; }
.error-message { color: #c62828; font-weight: 600; }
"""

TEMPLATES = {"base.html": BASE, "home.html": HOME, "error.html": ERROR}
