"""The dev phone page: ``/phone`` on the sandbox, a phone's view of the local run in a browser.

    GET  /phone                         the phone numbers the sandbox has seen, and a box to open one
    GET  /phone/<number>                that phone: conversation, Verify codes, forms, faults, request log
    GET  /phone/<number>/live           the same page's changing parts as JSON (the page polls it)
    POST /phone/<number>/send           text the app as that phone (text, channel=sms|whatsapp, to?)
    POST /phone/<number>/app/<action>   act as the app: send, verify-start, verify-check (linked app only)
    POST /phone/<number>/faults         switch the page's faults (throttle, 5xx, delay, drop_receipts)

Server-rendered HTML that works without JavaScript (every form posts and redirects back); a
small inline script polls ``/live`` once a second and posts the forms without reloading.
Forms carry a per-sandbox secret so that another web page cannot post to it. Like the rest of
the sandbox, it listens on loopback only and is never deployed.
"""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from sandbox import devphone
from sandbox.devphone import FAULT_TOGGLES, digits

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

__all__ = ["handle_phone"]

_APP_ACTIONS = ("send", "verify-start", "verify-check")


def handle_phone(ctx: SandboxContext, request: Request, rest: str) -> Response:
    """Dispatch ``/phone`` and ``/phone/...``."""
    parts = [part for part in rest.split("/") if part]
    if not parts:
        return _html(_index_page(ctx))
    if parts == ["open"]:
        number = digits(request.args.get("number"))
        return _redirect(f"/phone/{number}" if number else "/phone")
    number = digits(parts[0])
    if not number:
        return _html(_index_page(ctx, notice="A phone number needs digits."), status=404)
    tail = parts[1:]
    if request.method == "GET":
        if not tail:
            return _html(_phone_page(ctx, number, request.args.get("notice", "")))
        if tail == ["live"]:
            return _json(_live(ctx, number))
        return _html(_index_page(ctx, notice="No such page."), status=404)
    if request.form.get("form_secret") != ctx.devphone.form_secret:
        return _answer(request, number, ok=False, notice="The form is out of date: reload the page.", status=403)
    try:
        notice = _post(ctx, number, tail, request)
    except ValueError as exc:
        return _answer(request, number, ok=False, notice=str(exc), status=400)
    return _answer(request, number, ok=True, notice=notice)


def _post(ctx: SandboxContext, number: str, tail: list[str], request: Request) -> str:
    form = {key: request.form.get(key, "") for key in request.form}
    if tail == ["send"]:
        devphone.send_as_phone(ctx, number, form.get("text", ""), channel=form.get("channel") or "sms", to=form.get("to", ""))
        return "Sent to the app."
    if tail == ["faults"]:
        devphone.set_toggles(ctx, request.form.getlist("fault"))
        on = sorted(devphone.enabled_toggles(ctx))
        return "Faults on: " + ", ".join(on) if on else "No faults: Vonage behaves."
    if len(tail) == 2 and tail[0] == "app" and tail[1] in _APP_ACTIONS:
        if tail[1] == "verify-check" and not form.get("request_id"):
            latest = devphone.verify_codes(ctx, number)
            if not latest:
                raise ValueError("no verification was started for this phone")
            form["request_id"] = str(latest[0].get("request_id") or "")
        entry = devphone.act_as_app(ctx, number, tail[1], form)
        return f"The app answered {tail[1]} with HTTP {entry['status']}."
    raise ValueError("no such action")


# ---- pages --------------------------------------------------------------------------------


def _index_page(ctx: SandboxContext, notice: str = "") -> str:
    numbers = devphone.phone_numbers(ctx)
    items = "".join(f'<li><a href="/phone/{n}">+{n}</a></li>' for n in numbers) or "<li>No phone has been used yet.</li>"
    body = f"""
<header><h1>Dev phone</h1><p>The phones of the local Vonage sandbox.</p></header>
<main>
{_notice(notice)}
<section aria-labelledby="phones-h"><h2 id="phones-h">Phones</h2><ul>{items}</ul></section>
<section aria-labelledby="open-h"><h2 id="open-h">Open a phone</h2>
<form method="get" action="/phone/open">
<label for="open-number">Phone number (with country code)</label>
<input id="open-number" name="number" type="tel" inputmode="tel" required placeholder="+1 415 555 0123">
<button type="submit">Open</button>
</form></section>
</main>"""
    return _document("Dev phone", body, live_url=None)


def _phone_page(ctx: SandboxContext, number: str, notice: str) -> str:
    secret = escape(ctx.devphone.form_secret)
    app = ctx.devphone.app
    live = _live(ctx, number)
    base = f"/phone/{number}"
    app_number = app.number if app else ""
    others = [n for n in devphone.phone_numbers(ctx) if n != number]
    switch = "".join(f'<li><a href="/phone/{n}">+{n}</a></li>' for n in others)
    app_section = (
        f"""
<section aria-labelledby="app-h"><h2 id="app-h">Act as the app</h2>
<p class="hint">The page calls the app at <code>{escape(app.url)}</code> with the local API token, as your code would.</p>
<form method="post" action="{base}/app/send" data-js id="app-send">
{_secret(secret)}
<label for="app-text">The app texts this phone</label>
<input id="app-text" name="text" required maxlength="1600" data-clear value="Your order has shipped">
<button type="submit">Send from the app</button>
</form>
<form method="post" action="{base}/app/verify-start" data-js id="verify-start">
{_secret(secret)}
<label for="brand">Brand in the code message</label>
<input id="brand" name="brand" value="Acme" maxlength="16">
<button type="submit">Start a verification</button>
</form>
<form method="post" action="{base}/app/verify-check" data-js id="verify-check">
{_secret(secret)}
<label for="code">Code the phone received</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required data-clear>
<label for="request-id">Request id <span class="hint">(empty: the latest verification)</span></label>
<input id="request-id" name="request_id">
<button type="submit">Check the code</button>
</form>
<h3 id="activity-h">What the app answered</h3>
<div data-region="activity" aria-labelledby="activity-h">{live["activity"]}</div>
</section>"""
        if app
        else '<section><h2>Act as the app</h2><p class="hint">No app is linked: start the local run '
        "(<code>./local.sh</code>) to send and verify from this page.</p></section>"
    )
    faults = _fault_form(ctx, base, secret)
    body = f"""
<header>
<p><a href="/phone">All phones</a></p>
<h1>Dev phone <span class="number">+{number}</span></h1>
{f'<nav aria-label="Other phones"><ul class="inline">{switch}</ul></nav>' if switch else ''}
</header>
<main>
<div id="notice" role="status" aria-live="polite">{_notice(notice)}</div>
<div class="grid">
<div>
<section aria-labelledby="thread-h"><h2 id="thread-h">Conversation</h2>
<div data-region="thread">{live["thread"]}</div>
<p id="announce" class="visually-hidden" aria-live="polite"></p>
<form method="post" action="{base}/send" data-js id="phone-send" class="compose">
{_secret(secret)}
<label for="text">Text the app as this phone</label>
<textarea id="text" name="text" rows="2" required maxlength="1600" data-clear></textarea>
<fieldset class="inline"><legend>Channel</legend>
<label><input type="radio" name="channel" value="sms" checked> SMS</label>
<label><input type="radio" name="channel" value="whatsapp"> WhatsApp</label>
</fieldset>
<label for="to">To (the app's number)</label>
<input id="to" name="to" type="tel" value="{escape('+' + app_number if app_number else '')}" required>
<button type="submit">Send</button>
</form>
</section>
{app_section}
</div>
<div>
<section aria-labelledby="codes-h"><h2 id="codes-h">Verify inbox</h2>
<div data-region="codes">{live["codes"]}</div></section>
{faults}
<section aria-labelledby="log-h"><h2 id="log-h">Request log</h2>
<p class="hint">What the app asked the sandbox's Vonage APIs, latest first.</p>
<div data-region="log">{live["log"]}</div></section>
</div>
</div>
</main>"""
    return _document(f"Dev phone +{number}", body, live_url=f"{base}/live")


def _fault_form(ctx: SandboxContext, base: str, secret: str) -> str:
    enabled = devphone.enabled_toggles(ctx)
    boxes = []
    for toggle in FAULT_TOGGLES:
        ident = f"fault-{toggle.kind}"
        checked = " checked" if toggle.kind in enabled else ""
        boxes.append(
            f'<div class="check"><input type="checkbox" id="{ident}" name="fault" value="{toggle.kind}"{checked} '
            f'aria-describedby="{ident}-help"><label for="{ident}">{escape(toggle.label)}</label>'
            f'<p class="hint" id="{ident}-help">{escape(toggle.help)}</p></div>'
        )
    return f"""
<section aria-labelledby="faults-h"><h2 id="faults-h">Faults</h2>
<form method="post" action="{base}/faults" data-js id="faults">
{_secret(secret)}
<fieldset><legend>Make the sandbox's Vonage misbehave</legend>{''.join(boxes)}</fieldset>
<button type="submit">Apply faults</button>
</form></section>"""


# ---- the live parts -----------------------------------------------------------------------


def _live(ctx: SandboxContext, number: str) -> dict[str, str]:
    return {
        "thread": _thread(devphone.conversation(ctx, number)),
        "codes": _codes(devphone.verify_codes(ctx, number)),
        "activity": _activity(ctx.devphone.activity(number)),
        "log": _log(devphone.request_log(ctx)),
    }


def _thread(items: list[dict[str, Any]]) -> str:
    if not items:
        return '<p class="empty">No messages yet.</p>'
    rows = []
    for item in items:
        mine = item["direction"] == "from_phone"
        who = "Phone → app" if mine else "App → phone"
        states = _states(item)
        rows.append(
            f'<li class="msg {"mine" if mine else "theirs"}" data-direction="{item["direction"]}">'
            f'<p class="text">{escape(item["text"])}</p>'
            f'<p class="meta">{who} · {escape(item["channel"].upper())} · <time>{escape(_clock(item["at"]))}</time>'
            f"{states}</p></li>"
        )
    return f'<ol class="thread">{"".join(rows)}</ol>'


def _states(item: dict[str, Any]) -> str:
    if item.get("trial_rejected"):
        return ' · <span class="state bad">rejected: trial account, number not allowed</span>'
    if not item["states"]:
        waiting = "not yet taken by the app" if item["direction"] == "from_phone" else "no receipt yet"
        return f' · <span class="state">{waiting}</span>'
    shown = []
    for state in item["states"]:
        status, delivery = state["status"], state["delivery"]
        if delivery == "delivered":
            text, cls = f"{status} ✓", "ok"
        elif delivery in ("pending", "retrying"):
            text, cls = f"{status} (webhook {delivery})", ""
        else:
            text, cls = f"{status} (webhook {delivery})", "bad"
        shown.append(f'<span class="state {cls}" data-status="{escape(status)}">{escape(text)}</span>')
    return " · " + " ".join(shown)


def _codes(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return '<p class="empty">No codes yet.</p>'
    rows = []
    for entry in entries:
        rows.append(
            f'<li><output class="code">{escape(str(entry.get("code")))}</output> '
            f'<span class="meta">{escape(str(entry.get("channel") or ""))} from {escape(str(entry.get("from") or ""))} · '
            f'<time>{escape(_clock(entry.get("received_at", "")))}</time> · request '
            f'<code class="request-id">{escape(str(entry.get("request_id") or ""))}</code></span></li>'
        )
    return f'<ol class="codes">{"".join(rows)}</ol>'


def _activity(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return '<p class="empty">Nothing asked yet.</p>'
    rows = []
    for entry in entries:
        answer = json.dumps(entry["answer"], ensure_ascii=False) if not isinstance(entry["answer"], str) else entry["answer"]
        ok = 200 <= int(entry["status"]) < 300
        rows.append(
            f'<li class="{"ok" if ok else "bad"}" data-action="{escape(entry["action"])}">'
            f'<strong>{escape(entry["action"])}</strong> → HTTP {entry["status"]} '
            f'<time>{escape(_clock(entry["at"]))}</time><pre>{escape(answer[:600])}</pre></li>'
        )
    return f'<ol class="activity">{"".join(rows)}</ol>'


def _log(requests: list[dict[str, Any]]) -> str:
    if not requests:
        return '<p class="empty">No requests yet.</p>'
    rows = []
    for record in requests:
        faults = ", ".join(record.get("faults") or []) or "–"
        fields = json.dumps(record.get("fields"), ensure_ascii=False, sort_keys=True)
        rows.append(
            "<tr>"
            f'<td><time>{escape(_clock(record.get("received_at", "")))}</time></td>'
            f'<td>{escape(record.get("method", ""))} {escape(record.get("path", ""))}'
            f"<details><summary>fields</summary><pre>{escape(fields[:1500])}</pre></details></td>"
            f'<td>{escape(str(record.get("status")))}</td>'
            f'<td>{escape(str(record.get("outcome") or ""))}</td>'
            f"<td>{escape(faults)}</td></tr>"
        )
    return (
        '<div class="scroll"><table><thead><tr><th scope="col">Time</th><th scope="col">Request</th>'
        '<th scope="col">HTTP</th><th scope="col">Outcome</th><th scope="col">Faults</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


# ---- helpers ------------------------------------------------------------------------------


def _clock(iso: str) -> str:
    """``2026-12-02T14:32:01.123Z`` -> ``14:32:01`` (the day is today in a local run)."""
    return iso[11:19] if len(iso) >= 19 else iso


def _secret(secret: str) -> str:
    return f'<input type="hidden" name="form_secret" value="{secret}">'


def _notice(text: str) -> str:
    return f"<p>{escape(text)}</p>" if text else ""


def _answer(request: Request, number: str, *, ok: bool, notice: str, status: int = 200) -> Response:
    """JSON for the script, or a redirect back to the page (with the notice) for a plain form post."""
    if "application/json" in request.headers.get("Accept", ""):
        return _json({"ok": ok, "notice": notice}, status=status if not ok else 200)
    return _redirect(f"/phone/{number}?notice={quote(notice)}")


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/html; charset=utf-8", headers=_NO_STORE)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=_NO_STORE)


def _redirect(location: str) -> Response:
    return Response("", status=303, headers={"Location": location, **_NO_STORE})


_NO_STORE = {"Cache-Control": "no-store"}


def _document(title: str, body: str, *, live_url: str | None) -> str:
    live = f' data-live="{escape(live_url)}"' if live_url else ""
    script = f"<script>{_SCRIPT}</script>" if live_url else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_STYLE}</style></head>
<body{live}>{body}{script}</body></html>"""


_STYLE = """
:root{--ink:#1b1b1f;--muted:#5a5a66;--line:#d6d6de;--mine:#0b57d0;--theirs:#eef0f4;--ok:#146c2e;--bad:#b3261e;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);line-height:1.4}
body{margin:0 auto;max-width:72rem;padding:.75rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:.2rem 0 .5rem}h3{font-size:1rem}
section{border:1px solid var(--line);border-radius:.6rem;padding:.75rem;margin:0 0 .75rem}
.grid{display:grid;gap:.75rem;grid-template-columns:minmax(0,1fr)}.grid>div{min-width:0}
@media(min-width:60rem){.grid{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}}
code{overflow-wrap:anywhere}
.thread{list-style:none;padding:0;margin:0 0 .75rem;display:flex;flex-direction:column;gap:.4rem;max-height:28rem;overflow-y:auto}
.msg{max-width:85%;padding:.4rem .6rem;border-radius:.8rem;background:var(--theirs);align-self:flex-start}
.msg.mine{background:var(--mine);color:#fff;align-self:flex-end}.msg.mine .meta,.msg.mine .state{color:#e8eefc}
.text{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}.meta{margin:.15rem 0 0;font-size:.8rem;color:var(--muted)}
.state.ok{color:var(--ok)}.state.bad{color:var(--bad);font-weight:600}
label{display:block;font-weight:600;margin:.4rem 0 .15rem}fieldset{border:1px solid var(--line);border-radius:.4rem;margin:.4rem 0}
fieldset.inline label,.check label{display:inline;font-weight:400;margin-right:.8rem}.check{margin:.3rem 0}.check .hint{margin:0 0 0 1.6rem}
input[type=tel],input:not([type]),input[type=text],textarea{width:100%;box-sizing:border-box;font:inherit;padding:.4rem;border:1px solid #8a8a96;border-radius:.3rem}
button{font:inherit;margin-top:.5rem;padding:.45rem .9rem;border-radius:.4rem;border:1px solid var(--mine);background:var(--mine);color:#fff;cursor:pointer}
:focus-visible{outline:3px solid #f29900;outline-offset:2px}
form+form{border-top:1px solid var(--line);margin-top:.6rem;padding-top:.2rem}
.hint,.empty{color:var(--muted);font-size:.85rem}.code{font-size:1.4rem;font-weight:700;letter-spacing:.15em}
.codes,.activity{padding-left:1.2rem}.activity pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem;margin:.2rem 0}
.activity .bad strong{color:var(--bad)}ul.inline{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.6rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.8rem;width:100%}td,th{border-bottom:1px solid var(--line);padding:.2rem .3rem;text-align:left;vertical-align:top}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:30rem}.number{font-weight:400}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
#notice p{background:#fff4d6;border-radius:.4rem;padding:.4rem .6rem;margin:0 0 .75rem}
"""

# Polls the live parts once a second (replacing a region only when it changed, and announcing
# each new message once to screen readers) and posts the forms without leaving the page.
_SCRIPT = """
(function () {
  var url = document.body.getAttribute('data-live');
  var last = {};
  var notice = document.getElementById('notice');
  function say(text) { notice.innerHTML = ''; if (text) { var p = document.createElement('p'); p.textContent = text; notice.appendChild(p); } }
  function refresh() {
    return fetch(url, {headers: {Accept: 'application/json'}, cache: 'no-store'})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        document.querySelectorAll('[data-region]').forEach(function (el) {
          var key = el.getAttribute('data-region');
          if (typeof data[key] === 'string' && data[key] !== last[key]) {
            var thread = el.querySelector('.thread');
            var atEnd = !thread || thread.scrollTop + thread.clientHeight >= thread.scrollHeight - 8;
            var before = el.querySelectorAll('.msg').length;
            last[key] = data[key];
            el.innerHTML = data[key];
            thread = el.querySelector('.thread');
            if (thread && atEnd) { thread.scrollTop = thread.scrollHeight; }
            var messages = el.querySelectorAll('.msg');
            if (key === 'thread' && messages.length > before) {
              // Screen readers hear each new message once, not the whole thread again.
              document.getElementById('announce').textContent = messages[messages.length - 1].innerText;
            }
          }
        });
      })
      .catch(function () {});
  }
  document.querySelectorAll('form[data-js]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var button = form.querySelector('button');
      button.disabled = true;
      fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form)), headers: {Accept: 'application/json'}})
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          say(answer.notice);
          if (answer.ok) { form.querySelectorAll('[data-clear]').forEach(function (f) { f.value = ''; }); }
        })
        .catch(function () { say('The sandbox did not answer.'); })
        .then(function () { button.disabled = false; return refresh(); });
    });
  });
  var thread = document.querySelector('.thread');
  if (thread) { thread.scrollTop = thread.scrollHeight; }
  setInterval(refresh, 1000);
})();
"""
