// Renders a session from its event envelopes: transcript (interim + final), who is
// speaking, agent state, tool calls, per-turn latency chart, filterable event log.
// The view is a pure function of the events applied so far, so replay = apply a prefix.
(function () {
  "use strict";
  const MAX_LOG_ROWS = 3000;
  const STAGES = [
    ["end_of_utterance_delay_ms", "EOU", "#8b5cf6"],
    ["stt_duration_ms", "STT", "#0ea5e9"],
    ["llm_ttft_ms", "LLM TTFT", "#f59e0b"],
    ["tts_ttfb_ms", "TTS TTFB", "#10b981"],
  ];
  const KINDS = {
    conversation: ["stt_result", "text_received", "turn_started", "turn_ended", "response_generated", "conversation_item_added", "speech_created", "interrupted", "response_cancelled", "vad_speech_start", "vad_speech_end"],
    tools: ["tool_called", "tool_completed", "tool_error"],
    state: ["session_started", "session_stopped", "state_changed", "agent_state_changed", "user_state_changed", "participant_joined", "participant_left", "room_id_updated", "call_ended", "reconnecting", "reconnected"],
    metrics: ["metrics_collected"],
    audio: ["audio_received", "audio_streamed", "tts_audio"],
    errors: ["error", "tool_error"],
    operator: ["operator_action"],
  };
  const AUDIO = new Set(KINDS.audio);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtTime(iso) {
    const d = new Date(iso);
    return d.toISOString().slice(11, 23);
  }
  function ms(v) { return v === null || v === undefined ? "—" : Math.round(v).toString(); }
  function pretty(s) {
    if (typeof s !== "string") return JSON.stringify(s);
    try { return JSON.stringify(JSON.parse(s)); } catch (e) { return s; }
  }
  function summary(e) {
    const d = e.data || {};
    switch (e.type) {
      case "stt_result": return (d.is_final ? "final: " : "interim: ") + d.text;
      case "text_received": return "[" + d.source + "] " + d.text;
      case "tool_called": return d.name + "(" + pretty(d.arguments) + ")";
      case "tool_completed": return d.name + " → " + d.output + " (" + ms(d.duration_ms) + " ms)";
      case "tool_error": return d.name + " ✗ " + d.error;
      case "agent_state_changed": case "user_state_changed": case "state_changed": return d.old_state + " → " + d.new_state;
      case "operator_action": return d.by + ": " + d.action + (d.text ? " “" + d.text + "”" : "");
      case "response_generated": return (d.interrupted ? "[interrupted] " : "") + d.text;
      case "metrics_collected": return "turn " + d.metrics.turn_id + ": e2e " + ms(d.metrics.end_to_end_ms) + " ms";
      case "error": return d.source + ": " + d.message;
      case "call_ended": return "end-of-call report: " + (d.reason || d.status) + " · " + (d.transcript || []).length +
        " transcript lines · " + Math.round(d.duration_s || 0) + " s" + (d.recording_url ? " · recorded" : "");
      default: {
        const s = JSON.stringify(d);
        return s.length > 160 ? s.slice(0, 157) + "…" : s;
      }
    }
  }

  class SessionView {
    constructor(root) {
      this.root = root || document;
      this.$ = (id) => document.getElementById(id);
      this.reset();
      const f = this.$("log-filter"), k = this.$("log-kind"), a = this.$("log-audio");
      [f, k, a].forEach((x) => x && x.addEventListener("input", () => this.refilter()));
      if (a) a.addEventListener("change", () => this.refilter());
      this.drawLegend();
    }
    reset() {
      this.seqs = [];
      this.speech = new Map();   // speech_id → transcript line
      this.tools = new Map();    // call_id → table row
      this.turns = [];           // metrics per turn
      this.interim = null;
      this.turnCount = 0;
      ["transcript", "event-log"].forEach((id) => { const x = this.$(id); if (x) x.textContent = ""; });
      const tb = this.$("tool-calls"); if (tb) tb.tBodies[0].textContent = "";
      const lt = this.$("latency-table"); if (lt) lt.tBodies[0].textContent = "";
      const ch = this.$("latency-chart"); if (ch) { ch.textContent = ""; ch.appendChild(el("div", "empty", "No completed turns yet.")); }
      this.setSpeaking("user", false); this.setSpeaking("agent", false);
      this.setText("turn-count", "0"); this.setText("last-seq", "0");
    }
    setText(id, t) { const x = this.$(id); if (x) x.textContent = t; }
    setSpeaking(who, on) { const x = this.$(who + "-speaking"); if (x) x.dataset.on = on ? "1" : "0"; }
    participant(p, at) {
      // one row per identity, kept from the join/leave events (the page starts from the stored rows)
      const body = this.$("participants")?.querySelector("tbody"); if (!body || !p) return;
      body.querySelector(".empty-row")?.remove();
      let row = Array.from(body.rows).find((r) => r.dataset.identity === p.identity);
      if (!row) {
        row = body.insertRow(); row.dataset.identity = p.identity;
        for (let i = 0; i < 4; i++) row.insertCell();
        row.cells[0].className = "mono"; row.cells[0].textContent = p.identity;
        row.cells[3].textContent = (at || "").slice(11, 19);
      }
      row.cells[1].textContent = p.kind; row.cells[2].textContent = p.connection_state;
    }

    setBadge(id, value, prefix) {
      const x = this.$(id); if (!x) return;
      x.textContent = value; x.className = "badge " + (prefix || "b-") + value;
    }

    apply(events) {
      const t = this.$("transcript");
      const stick = t && t.scrollTop + t.clientHeight >= t.scrollHeight - 30;
      for (const e of events) this.one(e);
      if (t && stick) t.scrollTop = t.scrollHeight;
      if (events.length) this.setText("last-seq", String(events[events.length - 1].seq));
    }

    one(e) {
      this.seqs.push(e.seq);
      this.log(e);
      const d = e.data || {};
      switch (e.type) {
        case "stt_result":
          if (d.is_final) { this.dropInterim(); this.line("user", d.text, e); }
          else this.showInterim(d.text);
          break;
        case "text_received": {
          this.dropInterim();
          const l = this.line("user", d.text, e);
          if (d.source && d.source !== "local") this.tag(l, d.source === "operator" ? "typed by operator" : d.source);
          break;
        }
        case "speech_created": this.agentLine(d.speech_id, e, d.source); break;
        case "tts_audio": if (d.text) this.agentAppend(d.speech_id, d.text, e); break;
        case "response_generated": {
          const l = this.agentLine(d.speech_id, e);
          l.querySelector(".text").textContent = d.text;
          l.dataset.text = d.text;
          if (d.interrupted) l.classList.add("interrupted");
          if (d.scripted && !l.querySelector(".tag.scripted")) this.tag(l, "scripted", "scripted");
          break;
        }
        case "interrupted": {
          const l = this.speech.get(d.speech_id);
          if (l) this.markInterrupted(l, d.played_text || "");
          this.sys("interrupted (" + d.reason + ") after " + ms(d.played_ms) + " ms", e, "warn");
          break;
        }
        case "turn_started": this.turnCount++; this.setText("turn-count", String(this.turnCount)); break;
        case "agent_state_changed":
          this.setBadge("agent-state", d.new_state, "b-agent-");
          this.setSpeaking("agent", d.new_state === "speaking");
          break;
        case "user_state_changed": this.setSpeaking("user", d.new_state === "speaking"); break;
        case "vad_speech_start": this.setSpeaking("user", true); break;
        case "vad_speech_end": this.setSpeaking("user", false); break;
        case "participant_joined": case "participant_left": this.participant(d.participant, e.at); break;
        case "state_changed":
          this.setBadge("session-status", d.new_state);
          if (this.onStatus) this.onStatus(d.new_state);
          break;
        case "session_started": this.sys("session started" + (d.transport ? " · " + d.transport : "") + (d.text_only ? " · text only" : ""), e); break;
        case "session_stopped":
          this.sys("session ended: " + (d.reason || "—") + " · " + d.turns + " turns", e, "end");
          this.setSpeaking("user", false); this.setSpeaking("agent", false);
          this.ended = true;
          if (this.onEnded) this.onEnded(d);
          break;
        case "operator_action": {
          const t = d.text && d.text.length > 90 ? d.text.slice(0, 88) + "…" : d.text;
          this.sys("⚑ " + (d.by || "operator") + " · " + d.action + (t ? ": “" + t + "”" : ""), e, "op");
          break;
        }
        case "tool_called": this.toolCalled(d, e); break;
        case "tool_completed": this.toolDone(d, false); break;
        case "tool_error": this.toolDone(d, true); break;
        case "metrics_collected": this.metrics(d.metrics); break;
        case "error": this.sys("error · " + d.source + ": " + d.message, e, "error"); break;
        case "participant_joined": this.sys((d.participant && d.participant.identity) + " joined", e); break;
        case "participant_left": this.sys((d.participant && d.participant.identity) + " left", e); break;
        case "reconnecting": this.sys("connection lost · reconnecting" + (d.transport ? " to " + d.transport : "") + "…", e, "error"); break;
        case "reconnected": this.sys("reconnected after " + ms(d.downtime_ms) + " ms", e); break;
      }
    }

    // -- transcript --
    line(role, text, e) {
      const t = this.$("transcript");
      const l = el("div", "line " + role);
      l.appendChild(el("span", "ts", fmtTime(e.at).slice(0, 8)));
      l.appendChild(el("span", "role", role === "user" ? "User" : role === "agent" ? "Agent" : ""));
      l.appendChild(el("span", "text", text));
      l.dataset.seq = e.seq;
      if (t) t.appendChild(l);
      return l;
    }
    tag(l, text, cls) {
      let tags = l.querySelector(".tags");
      if (!tags) { tags = el("span", "tags"); l.appendChild(tags); }
      tags.appendChild(el("span", "tag " + (cls || ""), text));
    }
    sys(text, e, cls) { return this.line("sys " + (cls || ""), text, e); }
    showInterim(text) {
      const t = this.$("transcript");
      if (!this.interim) {
        this.interim = el("div", "line user interim");
        this.interim.appendChild(el("span", "ts", ""));
        this.interim.appendChild(el("span", "role", "User"));
        this.interim.appendChild(el("span", "text", ""));
        if (t) t.appendChild(this.interim);
      }
      this.interim.querySelector(".text").textContent = text;
    }
    dropInterim() { if (this.interim) { this.interim.remove(); this.interim = null; } }
    agentLine(id, e, source) {
      let l = this.speech.get(id);
      if (!l) {
        l = this.line("agent", "", e);
        l.dataset.speechId = id;
        l.dataset.text = "";
        if (source && source !== "generate_reply") this.tag(l, source);
        this.speech.set(id, l);
      }
      return l;
    }
    agentAppend(id, text, e) {
      const l = this.agentLine(id, e);
      l.dataset.text = (l.dataset.text ? l.dataset.text + " " : "") + text;
      l.querySelector(".text").textContent = l.dataset.text;
    }
    markInterrupted(l, heard) {
      const full = l.dataset.text || "";
      const span = l.querySelector(".text");
      span.textContent = "";
      span.appendChild(document.createTextNode(heard));
      if (full.length > heard.length && full.startsWith(heard)) span.appendChild(el("span", "unheard", full.slice(heard.length)));
      l.classList.add("interrupted");
      if (!l.querySelector(".tag.int")) this.tag(l, "interrupted", "int");
    }

    // -- tools --
    toolCalled(d, e) {
      const tb = this.$("tool-calls");
      const r = el("tr", "tool running");
      r.dataset.callId = d.call_id;
      r.appendChild(el("td", "mono", d.name));
      const cell = (cls, text) => { const td = el("td", "mono"); td.appendChild(el("div", "clamp " + cls, text)); return td; };
      r.appendChild(cell("args", pretty(d.arguments)));
      r.appendChild(cell("result", "running…"));
      r.appendChild(el("td", "num dur", ""));
      if (tb) tb.tBodies[0].appendChild(r);
      this.tools.set(d.call_id, r);
      this.sys("→ " + d.name + "(" + pretty(d.arguments) + ")", e, "tool");
    }
    toolDone(d, failed) {
      let r = this.tools.get(d.call_id);
      if (!r) { this.toolCalled({ call_id: d.call_id, name: d.name, arguments: "" }, { at: new Date().toISOString(), seq: 0 }); r = this.tools.get(d.call_id); }
      r.classList.remove("running");
      r.classList.add(failed ? "failed" : "done");
      r.querySelector(".result").textContent = failed ? "✗ " + d.error : d.output;
      r.querySelector(".result").title = failed ? d.error : d.output;
      r.querySelector(".dur").textContent = ms(d.duration_ms);
    }

    // -- latency --
    metrics(m) {
      this.turns.push(m);
      const lt = this.$("latency-table");
      if (lt && !lt.hidden) {
        const r = el("tr");
        r.appendChild(el("td", "mono", m.turn_id));
        STAGES.forEach(([k]) => r.appendChild(el("td", "num", ms(m[k]))));
        r.appendChild(el("td", "num strong", ms(m.end_to_end_ms)));
        r.appendChild(el("td", "num", m.tool_calls));
        r.appendChild(el("td", "num", m.total_tokens));
        lt.tBodies[0].insertBefore(r, lt.tBodies[0].firstChild);
      }
      this.drawChart();
    }
    drawLegend() {
      const lg = this.$("latency-legend"); if (!lg) return;
      lg.textContent = "";
      STAGES.forEach(([, label, color]) => { const s = el("span", "key", label); s.style.setProperty("--c", color); lg.appendChild(s); });
      const s = el("span", "key e2e", "end-to-end"); lg.appendChild(s);
    }
    drawChart() {
      const box = this.$("latency-chart"); if (!box) return;
      const turns = this.turns.slice(-16);
      const NS = "http://www.w3.org/2000/svg";
      const W = Math.max(box.clientWidth || 600, 280), H = box.classList.contains("small") ? 150 : 170;
      const pad = { l: 44, r: 8, t: 10, b: 22 };
      const max = Math.max(100, ...turns.map((m) => Math.max(m.end_to_end_ms || 0, STAGES.reduce((a, [k]) => a + (m[k] || 0), 0))));
      const nice = Math.pow(10, Math.floor(Math.log10(max)));
      const top = Math.ceil(max / nice) * nice;
      const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / top);
      const svg = document.createElementNS(NS, "svg");
      svg.setAttribute("viewBox", "0 0 " + W + " " + H); svg.setAttribute("width", "100%"); svg.setAttribute("height", H);
      svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "per-turn latency");
      const add = (tag, attrs, text) => {
        const n = document.createElementNS(NS, tag);
        for (const k in attrs) n.setAttribute(k, attrs[k]);
        if (text !== undefined) n.textContent = text;
        svg.appendChild(n); return n;
      };
      for (let i = 0; i <= 4; i++) {
        const v = (top / 4) * i;
        add("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" });
        add("text", { x: pad.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, Math.round(v));
      }
      const slot = (W - pad.l - pad.r) / Math.max(turns.length, 1);
      const bw = Math.min(38, slot * 0.6);
      turns.forEach((m, i) => {
        const x = pad.l + slot * i + (slot - bw) / 2;
        let acc = 0;
        STAGES.forEach(([k, label, color]) => {
          const v = m[k] || 0; if (!v) return;
          const r = add("rect", { x, y: y(acc + v), width: bw, height: Math.max(0.5, y(acc) - y(acc + v)), fill: color, class: "bar" });
          const tt = document.createElementNS(NS, "title"); tt.textContent = label + ": " + ms(v) + " ms"; r.appendChild(tt);
          acc += v;
        });
        if (m.end_to_end_ms) {
          const ey = y(m.end_to_end_ms);
          const ln = add("line", { x1: x - 4, x2: x + bw + 4, y1: ey, y2: ey, class: "e2e" });
          const tt = document.createElementNS(NS, "title"); tt.textContent = "end-to-end: " + ms(m.end_to_end_ms) + " ms"; ln.appendChild(tt);
        }
        add("text", { x: x + bw / 2, y: H - 6, class: "axis", "text-anchor": "middle" }, "#" + (this.turns.length - turns.length + i + 1));
      });
      box.textContent = "";
      box.appendChild(svg);
    }

    // -- event log --
    log(e) {
      const lg = this.$("event-log"); if (!lg) return;
      const r = el("div", "ev");
      r.dataset.seq = e.seq; r.dataset.type = e.type;
      r.appendChild(el("span", "seq", e.seq));
      r.appendChild(el("span", "ts", fmtTime(e.at)));
      r.appendChild(el("span", "type t-" + e.type, e.type));
      r.appendChild(el("span", "sum", summary(e)));
      r.title = "click for the full payload";
      r.addEventListener("click", () => {
        const open = r.querySelector("pre");
        if (open) { open.remove(); return; }
        r.appendChild(el("pre", "payload", JSON.stringify(e, null, 2)));
      });
      r.hidden = !this.visible(r);
      lg.appendChild(r);
      while (lg.childElementCount > MAX_LOG_ROWS) lg.removeChild(lg.firstChild);
      if (!r.hidden && lg.scrollTop + lg.clientHeight >= lg.scrollHeight - 60) lg.scrollTop = lg.scrollHeight;
    }
    visible(r) {
      const f = this.$("log-filter"), k = this.$("log-kind"), a = this.$("log-audio");
      const type = r.dataset.type;
      if (k && k.value) { if (!KINDS[k.value].includes(type)) return false; }
      else if (a && !a.checked && AUDIO.has(type)) return false;
      if (f && f.value) { const q = f.value.toLowerCase(); if (!r.textContent.toLowerCase().includes(q)) return false; }
      return true;
    }
    refilter() {
      const lg = this.$("event-log"); if (!lg) return;
      for (const r of lg.children) r.hidden = !this.visible(r);
    }
  }

  window.SessionView = SessionView;
})();
