"""The few pages of a demo relying party, kept in Python so the package needs no data files."""

from __future__ import annotations

BASE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{{ title }}</title></head>
<body><header><h1>{{ title }}</h1></header>
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
<form method="post" action="{{ url_for('rp_auth.logout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<button type="submit">退出</button></form>
{% else %}
<p>您尚未登录。</p>
<p><a class="login" href="{{ url_for('rp_auth.login') }}">通过统一认证登录平台登录</a></p>
{% endif %}
{% endblock %}"""

ERROR = """{% extends "base.html" %}{% block content %}
<p class="error-message">{{ message }}</p>
<p><a href="{{ url_for('rp_home') }}">返回首页</a></p>
{% endblock %}"""

TEMPLATES = {"base.html": BASE, "home.html": HOME, "error.html": ERROR}
