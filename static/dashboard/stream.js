// WebSocket streams with reconnect. A session stream resumes from its last seq, so a
// dropped connection loses nothing: the server replays what was stored meanwhile.
(function () {
  "use strict";
  const REFUSED = { 4400: "bad request", 4401: "not logged in", 4403: "forbidden", 4404: "unknown session" };

  function wsUrl(path) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + path;
  }

  function setConn(state, text) {
    const el = document.getElementById("conn");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text || state;
  }

  class Stream {
    // handlers: onFrame(frame), onOpen(), onClose(code)
    constructor(pathFn, handlers) {
      this.pathFn = pathFn;
      this.h = handlers || {};
      this.ws = null;
      this.stopped = false;
      this.attempt = 0;
      this.timer = null;
    }
    connect() {
      if (this.stopped) return;
      clearTimeout(this.timer);
      const ws = new WebSocket(wsUrl(this.pathFn()));
      this.ws = ws;
      setConn(this.attempt ? "reconnecting" : "connecting", this.attempt ? "reconnecting…" : "connecting…");
      ws.onopen = () => { this.attempt = 0; setConn("live", "live"); this.h.onOpen && this.h.onOpen(); };
      ws.onmessage = (msg) => { try { this.h.onFrame(JSON.parse(msg.data)); } catch (e) { console.error(e); } };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.h.onClose && this.h.onClose(ev.code);
        if (REFUSED[ev.code]) { this.stopped = true; setConn("refused", "closed: " + REFUSED[ev.code]); return; }
        if (this.stopped) { setConn("closed", "closed"); return; }
        const delay = Math.min(5000, 250 * Math.pow(2, this.attempt++));
        setConn("reconnecting", "reconnecting…");
        this.timer = setTimeout(() => this.connect(), delay);
      };
    }
    // For tests and operators: drop the socket as a network failure would; it reconnects.
    drop() { if (this.ws) this.ws.close(4000, "dropped"); }
    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      const ws = this.ws;
      this.ws = null;  // its close event is ours, not a drop
      if (ws) ws.close(1000);
      setConn("closed", "closed");
    }
  }

  class SessionStream {
    // onEvents(envelopes) gets every seq exactly once, in order; onReplayDone(lastSeq).
    constructor(sessionId, handlers) {
      this.sessionId = sessionId;
      this.lastSeq = 0;
      this.h = handlers;
      this.stream = new Stream(() => "/ws/sessions/" + encodeURIComponent(sessionId) + "/?after_seq=" + this.lastSeq, {
        onFrame: (f) => this.frame(f),
        onClose: (code) => this.h.onClose && this.h.onClose(code),
      });
    }
    start() { this.stream.connect(); return this; }
    frame(f) {
      if (f.type === "events") {
        const fresh = f.events.filter((e) => e.seq > this.lastSeq);
        if (!fresh.length) return;
        if (fresh[0].seq !== this.lastSeq + 1) { this.stream.drop(); return; }  // reconnect fills it
        this.lastSeq = fresh[fresh.length - 1].seq;
        this.h.onEvents(fresh);
      } else if (f.type === "replay_done") {
        this.h.onReplayDone && this.h.onReplayDone(f.last_seq);
      }
    }
    drop() { this.stream.drop(); }
    stop() { this.stream.stop(); }
  }

  function csrfToken() {
    const el = document.querySelector("input[name=csrfmiddlewaretoken]");
    return el ? el.value : "";
  }

  async function postForm(url, data) {
    const body = new URLSearchParams(data || {});
    const res = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
    });
    let json = {};
    try { json = await res.json(); } catch (e) { json = { error: res.statusText }; }
    return { ok: res.ok, status: res.status, json };
  }

  window.Dash = { Stream, SessionStream, setConn, postForm, csrfToken, wsUrl };
})();
