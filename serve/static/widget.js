/* Meadow chat widget: <script src="https://HOST/widget.js" data-api="https://HOST" data-color="#2f855a"
 *   data-greeting="Hi! How can we help?" data-lang="en" data-position="right" data-heading="Help"></script>
 * Adds <meadow-chat>: a bubble and a chat panel that talk to the Meadow API (POST /api/chat with
 * stream=true, read as Server-Sent Events through fetch + ReadableStream). No dependencies, no iframe.
 * Style it from the host page with CSS custom properties on `meadow-chat`:
 *   --meadow-color, --meadow-text-on-color, --meadow-font, --meadow-radius, --meadow-bg, --meadow-fg, --meadow-z.
 */
(function () {
  "use strict";
  var script = document.currentScript;

  var STRINGS = {
    en: {
      title: "Meadow assistant", open: "Open chat", close: "Close chat", placeholder: "Type your question…",
      send: "Send", person: "Talk to a person", greeting: "Hi! Ask me anything about your Meadow loan.",
      busy: "We're very busy right now. Please try again in {s} s.",
      slow: "You're sending messages quickly. Please wait {s} s.",
      failed: "Sorry, something went wrong. Please try again.", sources: "Sources",
      up: "Helpful", down: "Not helpful", thanks: "Thanks for your feedback.", ticket: "Ticket",
      replyBy: "we will reply by", handoffMessage: "I'd like to talk to a person, please.",
      team: "Meadow team", contactAsk: "No one from the team is online right now. Leave a phone number or an " +
      "e-mail address and we will get back to you (only the team sees it).", contactPlaceholder: "Phone or e-mail",
      contactSend: "Leave my contact", contactThanks: "Thank you: the team will contact you.",
      contactBad: "Please give a phone number or an e-mail address."
    },
    zh: {
      title: "Meadow 智能客服", open: "打开对话", close: "关闭对话", placeholder: "请输入您的问题…",
      send: "发送", person: "转人工", greeting: "您好！关于 Meadow 贷款的问题都可以问我。",
      busy: "当前咨询量较大，请 {s} 秒后再试。", slow: "您发送得太快了，请等待 {s} 秒。",
      failed: "抱歉，出了点问题，请重试。", sources: "来源", up: "有帮助", down: "没帮助",
      thanks: "感谢您的反馈。", ticket: "工单", replyBy: "我们将在此之前答复：",
      handoffMessage: "我想转人工客服。", team: "Meadow 客服团队",
      contactAsk: "目前没有客服在线。请留下电话或电子邮箱，我们会尽快联系您（仅客服可见）。",
      contactPlaceholder: "电话或电子邮箱", contactSend: "留下联系方式", contactThanks: "谢谢，客服会尽快联系您。",
      contactBad: "请填写电话号码或电子邮箱地址。"
    }
  };

  var STYLE = [
    ":host{--c:var(--meadow-color,#2f855a);--on:var(--meadow-text-on-color,#fff);--bg:var(--meadow-bg,#fff);",
    "--fg:var(--meadow-fg,#1f2933);--r:var(--meadow-radius,14px);font-family:var(--meadow-font,inherit);",
    "position:fixed;bottom:20px;z-index:var(--meadow-z,2147483000);color:var(--fg)}",
    ":host([position=right]){right:20px}:host([position=left]){left:20px}",
    "button{font:inherit;cursor:pointer}",
    ".bubble{width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:var(--on);",
    "box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}",
    ".bubble svg{width:28px;height:28px;fill:currentColor}",
    ".panel{display:none;flex-direction:column;position:absolute;bottom:70px;width:min(370px,calc(100vw - 24px));",
    "height:min(560px,calc(100vh - 110px));background:var(--bg);border-radius:var(--r);overflow:hidden;",
    "box-shadow:0 10px 40px rgba(0,0,0,.25)}",
    ":host([position=right]) .panel{right:0}:host([position=left]) .panel{left:0}",
    ":host([open]) .panel{display:flex}",
    "header{background:var(--c);color:var(--on);padding:12px 14px;display:flex;align-items:center;",
    "justify-content:space-between;font-weight:600}",
    "header button{background:transparent;border:0;color:inherit;font-size:20px;line-height:1}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;font-size:14px}",
    ".msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;line-height:1.4}",
    ".user{align-self:flex-end;background:var(--c);color:var(--on);border-bottom-right-radius:4px}",
    ".bot{align-self:flex-start;background:#f1f3f5;border-bottom-left-radius:4px}",
    ".bot.streaming{opacity:.75}",
    ".sources{margin-top:6px;font-size:12px}.sources a{color:var(--c);display:block}",
    ".ticket{margin-top:6px;font-size:12px;border-left:3px solid var(--c);padding-left:6px}",
    ".rate{margin-top:4px;display:flex;gap:4px}.rate button{border:1px solid #ccd;background:#fff;border-radius:8px;",
    "font-size:12px;padding:1px 6px}.rate button[aria-pressed=true]{background:var(--c);color:var(--on)}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px}",
    ".choices{padding:6px 0 0}.chips button{border:1px solid var(--c);color:var(--c);background:transparent;border-radius:999px;",
    "padding:3px 10px;font-size:12px}",
    "form{display:flex;gap:6px;padding:10px;border-top:1px solid #e4e7eb}",
    "textarea{flex:1;resize:none;font:inherit;font-size:14px;padding:8px;border:1px solid #cbd2d9;border-radius:10px;",
    "min-height:20px;max-height:90px;color:inherit;background:inherit}",
    "form button{border:0;border-radius:10px;background:var(--c);color:var(--on);padding:0 14px}",
    "form button:disabled{opacity:.5}",
    ".agent{background:#e6f4ea;border-left:3px solid var(--c)}.agent strong{display:block;font-size:12px}",
    ".contact{display:flex;flex-wrap:wrap;gap:6px;font-size:12px;background:#fff8e1;border-radius:10px;padding:8px}",
    ".contact input{flex:1;min-width:120px;font:inherit;padding:4px 6px;border:1px solid #cbd2d9;border-radius:8px}",
    ".contact button{border:0;border-radius:8px;background:var(--c);color:var(--on);padding:4px 10px}",
    ".person{border:0;background:transparent;color:var(--c);font-size:12px;text-decoration:underline;padding:0 12px 8px;",
    "align-self:flex-start}"
  ].join("");

  var ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 ' +
    '2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';

  function fmt(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }

  /* Parse Server-Sent Events from a fetch body: calls onEvent(name, data) per event. */
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var step = await reader.read();
      if (step.done) break;
      buffer += decoder.decode(step.value, { stream: true }).replace(/\r\n/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        var name = "message", data = [];
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) name = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
        });
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  class MeadowChat extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      var api = (this.getAttribute("api") || "").replace(/\/$/, "");
      this.api = api;
      this.lang = (this.getAttribute("lang") || navigator.language || "en").slice(0, 2).toLowerCase();
      this.t = STRINGS[this.lang] || STRINGS.en;
      if (!this.hasAttribute("position")) this.setAttribute("position", "right");
      var color = this.getAttribute("color");
      if (color) this.style.setProperty("--meadow-color", color);
      this.storeKey = "meadow-chat:" + (api || location.origin);
      this.session = this.loadSession();
      this.render();
    }

    loadSession() {
      try { return JSON.parse(sessionStorage.getItem(this.storeKey) || "null"); } catch (e) { return null; }
    }

    saveSession() {
      try { sessionStorage.setItem(this.storeKey, JSON.stringify(this.session)); } catch (e) { /* private mode */ }
    }

    render() {
      var t = this.t, root = this.attachShadow({ mode: "open" });
      root.appendChild(el("style", {}, STYLE));
      var bubble = el("button", { class: "bubble", part: "bubble", "aria-label": t.open, "aria-expanded": "false" });
      bubble.innerHTML = ICON;
      var panel = el("section", { class: "panel", part: "panel", role: "dialog", "aria-label": t.title });
      var header = el("header", {}, null);
      header.appendChild(el("span", {}, this.getAttribute("heading") || t.title));
      var close = el("button", { "aria-label": t.close }, "×");
      header.appendChild(close);
      this.log = el("div", { class: "log", role: "log", "aria-live": "polite" });
      this.chips = el("div", { class: "chips" });
      var person = el("button", { class: "person", type: "button" }, t.person);
      var form = el("form", {});
      this.input = el("textarea", { rows: "1", placeholder: t.placeholder, "aria-label": t.placeholder,
        maxlength: "2000" });
      this.sendButton = el("button", { type: "submit" }, t.send);
      form.appendChild(this.input);
      form.appendChild(this.sendButton);
      [header, this.log, this.chips, person, form].forEach(function (n) { panel.appendChild(n); });
      root.appendChild(panel);
      root.appendChild(bubble);

      var self = this;
      bubble.addEventListener("click", function () { self.toggle(bubble); });
      close.addEventListener("click", function () { self.toggle(bubble, false); });
      person.addEventListener("click", function () { self.send(t.handoffMessage); });
      form.addEventListener("submit", function (e) { e.preventDefault(); self.send(self.input.value); });
      this.input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); self.send(self.input.value); }
      });
      this.addBot(this.getAttribute("greeting") || t.greeting);
      this.loadSuggestions();
      if (this.session && this.session.ticket) this.startPolling();  // a reload keeps hearing from the team
    }

    /* After a ticket, ask every few seconds for the team's answers in this conversation. */
    startPolling() {
      if (this.pollTimer || !this.session) return;
      var self = this;
      this.pollTimer = setInterval(function () { self.poll(); }, 4000);
      this.poll();
    }

    async poll() {
      if (!this.session || this.polling) return;
      this.polling = true;
      try {
        var url = this.api + "/api/conversations/" + encodeURIComponent(this.session.conversation_id) +
          "/messages?after=" + (this.session.agentSeq || 0);
        var r = await fetch(url, { headers: this.headers() });
        if (!r.ok) return;
        var found = await r.json(), self = this;
        found.messages.forEach(function (m) { self.addAgent(m); });
        this.session.agentSeq = found.last_seq;
        this.saveSession();
        if (this.session.handoff && !found.agents_online && !found.contact_left) this.askContact();
      } catch (e) { /* polling is retried at the next tick */ } finally { this.polling = false; }
    }

    addAgent(message) {
      var node = el("div", { class: "msg bot agent", "data-seq": String(message.seq) });
      node.appendChild(el("strong", {}, message.name || this.t.team));
      node.appendChild(document.createTextNode(message.content));
      this.log.appendChild(node);
      this.log.scrollTop = this.log.scrollHeight;
    }

    askContact() {
      if (this.contactForm) return;
      var t = this.t, self = this;
      var form = el("form", { class: "contact" });
      form.appendChild(el("div", {}, t.contactAsk));
      var input = el("input", { type: "text", maxlength: "254", placeholder: t.contactPlaceholder,
        "aria-label": t.contactPlaceholder, autocomplete: "email" });
      form.appendChild(input);
      form.appendChild(el("button", { type: "submit" }, t.contactSend));
      form.addEventListener("submit", async function (e) {
        e.preventDefault();
        var r = await fetch(self.api + "/api/conversations/" + encodeURIComponent(self.session.conversation_id) +
          "/contact", { method: "POST", headers: self.headers(), body: JSON.stringify({ contact: input.value }) });
        if (r.ok) form.replaceWith(el("div", { class: "msg bot" }, t.contactThanks));
        else input.setCustomValidity(t.contactBad), input.reportValidity(), input.setCustomValidity("");
      });
      this.contactForm = form;
      this.log.appendChild(form);
      this.log.scrollTop = this.log.scrollHeight;
    }

    toggle(bubble, force) {
      var open = force === undefined ? !this.hasAttribute("open") : force;
      this.toggleAttribute("open", open);
      bubble.setAttribute("aria-expanded", String(open));
      if (open) this.input.focus();
    }

    async loadSuggestions() {
      try {
        var r = await fetch(this.api + "/api/suggestions?lang=" + encodeURIComponent(this.lang));
        if (!r.ok) return;
        var self = this;
        (await r.json()).forEach(function (q) {
          var chip = el("button", { type: "button" }, q);
          chip.addEventListener("click", function () { self.send(q); });
          self.chips.appendChild(chip);
        });
      } catch (e) { /* suggestions are optional */ }
    }

    addUser(text) {
      this.log.appendChild(el("div", { class: "msg user" }, text));
      this.log.scrollTop = this.log.scrollHeight;
    }

    addBot(text) {
      var node = el("div", { class: "msg bot" }, text);
      this.log.appendChild(node);
      this.log.scrollTop = this.log.scrollHeight;
      return node;
    }

    headers() {
      var h = { "Content-Type": "application/json", "Accept": "text/event-stream" };
      if (this.session && this.session.customer_token) h.Authorization = "Bearer " + this.session.customer_token;
      return h;
    }

    async send(text) {
      text = (text || "").trim();
      if (!text || this.busy) return;
      this.busy = true;
      this.sendButton.disabled = true;
      this.input.value = "";
      this.chips.style.display = "none";
      this.addUser(text);
      var node = this.addBot("…");
      node.classList.add("streaming");
      try {
        await this.stream(text, node);
      } catch (e) {
        node.textContent = this.t.failed;
        // fetch throws TypeError when the server refused this page's origin (CORS) or is unreachable.
        if (e instanceof TypeError && window.console) console.error("Meadow widget: cannot reach " + this.api +
          " from " + location.origin + ". If the server is up, add this origin to ASSISTANT_WIDGET_ORIGINS.");
      } finally {
        node.classList.remove("streaming");
        this.busy = false;
        this.sendButton.disabled = false;
      }
    }

    async stream(text, node) {
      var body = { message: text, stream: true, lang: this.lang };
      if (this.session) body.conversation_id = this.session.conversation_id;
      var response = await fetch(this.api + "/api/chat", { method: "POST", headers: this.headers(),
        body: JSON.stringify(body) });
      if (response.status === 404 && this.session) {  // session gone (e.g. server data reset): start afresh
        this.session = null;
        return this.stream(text, node);
      }
      if (response.status === 429 || response.status === 503) {
        var wait = response.headers.get("Retry-After") || "10";
        node.textContent = fmt(response.status === 429 ? this.t.slow : this.t.busy, { s: wait });
        return;
      }
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      var self = this, draft = "";
      await readEvents(response, function (name, data) {
        if (name === "session" && data.session) {
          self.session = { customer_token: data.session.customer_token, conversation_id: data.conversation_id };
          self.saveSession();
        } else if (name === "delta") {
          draft += data.text;
          node.textContent = draft;
        } else if (name === "reply") {
          self.showReply(node, data);
        } else if (name === "error") {
          node.textContent = self.t.failed;
        }
        self.log.scrollTop = self.log.scrollHeight;
      });
    }

    showReply(node, reply) {
      var t = this.t, api = this.api;
      node.textContent = reply.text;
      node.dataset.traceId = reply.trace_id;
      if (reply.citations && reply.citations.length) {
        var sources = el("div", { class: "sources" });
        sources.appendChild(el("strong", {}, t.sources));
        reply.citations.forEach(function (c) {
          if (!c.url) return;
          var a = el("a", { href: api + c.url, target: "_blank", rel: "noopener", class: "citation" },
            "[" + c.n + "] " + c.title + (c.section ? " — " + c.section : ""));
          sources.appendChild(a);
        });
        node.appendChild(sources);
      }
      if (reply.ticket) {
        var id = reply.ticket.id || reply.ticket.ticket_id;
        var due = reply.ticket.resolve_due || reply.ticket.deadline;
        // the lender's local time with its zone, as the reply text says it (resolve_due_local from the API)
        var when = reply.ticket.resolve_due_local || (due ? new Date(due).toLocaleString(this.lang, { timeZone: "UTC", timeZoneName: "short" }) : "");
        var line = t.ticket + " " + id + (when ? " — " + t.replyBy + " " + when : "");
        node.appendChild(el("div", { class: "ticket" }, line));
        if (this.session) {
          this.session.ticket = id;
          this.session.handoff = this.session.handoff || reply.ticket.kind === "handoff";
          this.saveSession();
          this.startPolling();
        }
      }
      if (reply.form && reply.form.choices && reply.form.choices.length) {  // the eligibility form's options
        var self = this, choices = el("div", { class: "chips choices" });
        reply.form.choices.forEach(function (choice, i) {
          var b = el("button", { type: "button" }, (reply.form.labels || [])[i] || choice);
          b.addEventListener("click", function () { choices.remove(); self.send(choice); });
          choices.appendChild(b);
        });
        node.appendChild(choices);
      }
      this.addRating(node, reply.trace_id);
    }

    addRating(node, traceId) {
      var self = this, row = el("div", { class: "rate" });
      [["up", "👍", this.t.up], ["down", "👎", this.t.down]].forEach(function (spec) {
        var b = el("button", { type: "button", "aria-label": spec[2], "aria-pressed": "false", title: spec[2] }, spec[1]);
        b.addEventListener("click", function () {
          row.querySelectorAll("button").forEach(function (x) { x.setAttribute("aria-pressed", "false"); });
          b.setAttribute("aria-pressed", "true");
          self.feedback(traceId, spec[0]);
        });
        row.appendChild(b);
      });
      node.appendChild(row);
    }

    async feedback(traceId, rating) {
      if (!this.session) return;
      try {
        await fetch(this.api + "/api/feedback", { method: "POST", headers: this.headers(), body: JSON.stringify(
          { conversation_id: this.session.conversation_id, trace_id: traceId, rating: rating }) });
      } catch (e) { /* feedback is best effort */ }
    }
  }

  if (!customElements.get("meadow-chat")) customElements.define("meadow-chat", MeadowChat);

  // The script tag's data-* attributes configure one widget, added when the page is ready.
  if (script && !script.hasAttribute("data-manual")) {
    var add = function () {
      var d = script.dataset, widget = document.createElement("meadow-chat");
      var origin = new URL(script.src, location.href).origin;
      widget.setAttribute("api", d.api || origin);
      ["color", "greeting", "lang", "position", "heading"].forEach(function (k) {
        if (d[k]) widget.setAttribute(k, d[k]);
      });
      document.body.appendChild(widget);
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", add);
    else add();
  }
})();
