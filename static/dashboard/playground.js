// Playground: dispatch a local-transport job for the chosen agent, wait for its session,
// then talk to it by text ("message" operator action) or by voice (the audio socket) and
// watch the replies stream in; the agent's audio plays through the page.
(function () {
  "use strict";
  const root = document.getElementById("playground-root");
  const $ = (id) => document.getElementById(id);
  const view = new SessionView(root);
  const MIC_RATE = 16000;
  const state = { jobId: null, sessionId: null, stream: null, voice: null, events: [] };
  window.__playground = state;

  // -- voice: one audio socket per session; the agent's audio plays, the mic is optional --
  function meter(id, rms) {
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    $(id).firstElementChild.style.width = Math.max(0, Math.min(100, (db + 60) / 60 * 100)) + "%";
  }
  function voiceStatus(text, warn) { $("voice-status").textContent = text; $("voice-status").className = (warn ? "warn" : "muted") + " small"; }

  class Voice {
    constructor(ctx, sessionId) {
      this.ctx = ctx;
      this.sessionId = sessionId;
      this.framesIn = 0; this.framesOut = 0; this.stopped = false; this.ws = null; this.capture = null;
      this.playback = new VoicePlayback(ctx, { worklet: root.dataset.playbackWorklet, jitterMs: 80, onLevel: (r) => meter("agent-meter", r) });
    }
    async start() { await this.playback.start(); this.connect(); return this; }
    connect() {
      if (this.stopped) return;
      const ws = new WebSocket(Dash.wsUrl("/ws/sessions/" + encodeURIComponent(this.sessionId) + "/audio/?rate=" + MIC_RATE));
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onmessage = (m) => {
        if (typeof m.data !== "string") { this.framesIn++; this.playback.push(m.data); return; }
        const f = JSON.parse(m.data);
        if (f.type === "ready" && !this.noMic) { voiceStatus("audio connected · mic " + f.rate / 1000 + " kHz"); $("mic-btn").disabled = false; }
        else if (f.type === "format") this.playback.format(f.rate);
        else if (f.type === "clear") this.playback.clear("clear");
        else if (f.type === "warning") voiceStatus(f.message, true);
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.stopped) return;
        if (ev.code >= 4400 || ev.code === 1009) { voiceStatus("audio refused (" + ev.code + ")", true); return; }
        voiceStatus("audio reconnecting…", true);
        setTimeout(() => this.connect(), 1000);
      };
    }
    async toggleMic() {
      if (this.capture) { this.capture.stop(); this.capture = null; this.ui("on"); meter("mic-meter", 0); return; }
      const capture = new VoiceCapture(this.ctx, {
        rate: MIC_RATE, worklet: root.dataset.captureWorklet,
        onFrame: (pcm) => { if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(pcm); this.framesOut++; } },
        onLevel: (r) => meter("mic-meter", capture.muted ? 0 : r),
      });
      try {
        await capture.start();
      } catch (e) {
        voiceStatus("✗ microphone: " + e.message, true);
        return;
      }
      this.capture = capture;
      this.ui("live");
    }
    toggleMute() {
      if (!this.capture) return;
      this.capture.setMuted(!this.capture.muted);
      this.ui(this.capture.muted ? "muted" : "live");
    }
    ui(mode) {
      $("voice").dataset.state = mode;
      $("mic-btn").textContent = mode === "on" || mode === "off" ? "🎙 Microphone" : "■ Stop microphone";
      $("mic-btn").setAttribute("aria-pressed", mode === "on" || mode === "off" ? "false" : "true");
      $("mute-btn").disabled = !this.capture;
      $("mute-btn").textContent = mode === "muted" ? "Unmute" : "Mute";
      $("mute-btn").setAttribute("aria-pressed", mode === "muted" ? "true" : "false");
    }
    interrupted() { this.playback.clear("interrupted"); }
    textOnly() {  // an agent without STT or TTS neither hears nor speaks: keep the mic off
      this.noMic = true;
      if (this.capture) this.toggleMic();
      $("mic-btn").disabled = true;
      voiceStatus("text-only agent: no audio");
    }
    stop() {
      this.stopped = true;
      if (this.capture) this.capture.stop();
      this.capture = null;
      if (this.ws) this.ws.close(1000);
      this.ws = null;
      this.playback.stop();
      this.ui("off");
      $("mic-btn").disabled = true;
      meter("mic-meter", 0); meter("agent-meter", 0);
    }
  }

  let audioCtx = null;
  function audioContext() {
    // created on the click that starts a session: browsers only let a gesture start audio
    if (!audioCtx) audioCtx = new AudioContext();
    audioCtx.resume();
    return audioCtx;
  }
  async function startVoice(sessionId) {
    if (state.voice) state.voice.stop();
    state.voice = null;
    try {
      state.voice = await new Voice(audioContext(), sessionId).start();
      window.__voice = state.voice;
    } catch (e) {
      voiceStatus("✗ audio: " + e.message, true);
    }
  }
  $("mic-btn").addEventListener("click", () => state.voice && state.voice.toggleMic());
  $("mute-btn").addEventListener("click", () => state.voice && state.voice.toggleMute());

  function status(text, warn) { $("pg-status").textContent = text; $("pg-status").className = warn ? "warn" : "muted"; }
  function chat(enabled) { $("pg-text").disabled = !enabled; $("pg-send-btn").disabled = !enabled; $("pg-end-btn").disabled = !enabled; if (enabled) $("pg-text").focus(); }

  async function waitForSession() {
    for (let i = 0; i < 240; i++) {
      const res = await fetch(root.dataset.jobUrl.replace("JOB", state.jobId), { credentials: "same-origin" });
      const job = await res.json();
      if (job.session_id) return job;
      if (["failed", "cancelled", "completed"].includes(job.status)) throw new Error("job " + job.status + (job.failure_reason ? ": " + job.failure_reason : ""));
      status("Job " + state.jobId + " is " + job.status + "… waiting for a worker");
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error("no worker picked the job up in 2 minutes");
  }

  $("pg-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.stream) state.stream.stop();
    if (state.voice) state.voice.stop();
    audioContext();
    view.reset();
    state.events = [];
    chat(false);
    $("pg-start-btn").disabled = true;
    status("Dispatching…");
    try {
      const res = await Dash.postForm(root.dataset.startUrl, { agent: $("pg-agent").value });
      if (!res.ok) throw new Error(res.json.error || res.status);
      state.jobId = res.json.job_id;
      const job = await waitForSession();
      state.sessionId = job.session_id;
      const open = $("pg-open");
      open.href = root.dataset.sessionUrl.replace("SESSION", state.sessionId);
      open.hidden = false;
      status("Session " + state.sessionId + " · type below or use the microphone");
      state.stream = new Dash.SessionStream(state.sessionId, { onEvents: (events) => {
        view.apply(events);
        state.events.push(...events);  // for tests and the console: what the page was shown
        if (state.events.length > 5000) state.events.splice(0, 1000);
        if (state.voice && events.some((e) => e.type === "interrupted")) state.voice.interrupted();
        if (state.voice && events.some((e) => e.type === "session_started" && e.data.text_only)) state.voice.textOnly();
      } }).start();
      view.onEnded = () => { chat(false); status("Session ended."); if (state.voice) { state.voice.stop(); voiceStatus("session ended"); } };
      await startVoice(state.sessionId);
      chat(true);
    } catch (e) {
      status("✗ " + e.message, true);
    } finally {
      $("pg-start-btn").disabled = false;
    }
  });

  async function act(command, text) {
    const url = root.dataset.actionsUrl.replace("SESSION", state.sessionId).replace("COMMAND", command);
    const res = await Dash.postForm(url, text === undefined ? {} : { text });
    if (!res.ok) status("✗ " + (res.json.error || res.status), true);
    return res.ok;
  }
  $("pg-send").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("pg-text");
    if (!input.value.trim() || !state.sessionId) return;
    if (await act("message", input.value)) input.value = "";
  });
  $("pg-end-btn").addEventListener("click", () => act("end"));
})();
