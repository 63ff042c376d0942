// The live session page (and its replay mode).
(function () {
  "use strict";
  const root = document.getElementById("session-root");
  const sessionId = root.dataset.sessionId;
  const view = new SessionView(root);
  // Exposed for operators' consoles and the browser tests.
  window.__session = { view, stream: null, events: [] };

  if (root.dataset.mode === "replay") return replay();

  const stream = new Dash.SessionStream(sessionId, {
    onEvents: (events) => { window.__session.events.push(...events); view.apply(events); },
    onReplayDone: () => { root.dataset.replayed = "1"; },
  });
  window.__session.stream = stream;
  stream.start();

  view.onEnded = () => {
    const actions = document.getElementById("actions");
    if (actions) actions.querySelectorAll("button, input").forEach((x) => { x.disabled = true; });
    const st = document.getElementById("action-status");
    if (st) st.textContent = "The session has ended.";
  };

  const status = document.getElementById("action-status");
  async function act(command, text) {
    const url = root.dataset.actionsUrl.replace("COMMAND", command);
    status.textContent = command + "…";
    const res = await Dash.postForm(url, text === undefined ? {} : { text });
    status.textContent = res.ok ? command + " sent" : "✗ " + (res.json.error || res.status);
    status.className = "action-status " + (res.ok ? "muted" : "warn");
    return res.ok;
  }
  document.querySelectorAll("#actions form[data-command]").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = form.querySelector("input");
      if (!input.value.trim()) return;
      if (await act(form.dataset.command, input.value)) input.value = "";
    });
  });
  document.getElementById("btn-interrupt")?.addEventListener("click", () => act("interrupt"));
  // pause ⇄ resume: one button shows at a time, following the session's status
  const pauseBtn = document.getElementById("btn-pause");
  const resumeBtn = document.getElementById("btn-resume");
  pauseBtn?.addEventListener("click", () => act("pause"));
  resumeBtn?.addEventListener("click", () => act("resume"));
  view.onStatus = (status) => {
    if (!pauseBtn || !resumeBtn) return;
    pauseBtn.hidden = status === "paused";
    resumeBtn.hidden = status !== "paused";
    pauseBtn.disabled = status !== "active";
  };
  document.getElementById("btn-end")?.addEventListener("click", () => {
    if (window.__session.noConfirm || confirm("End this session for everyone in it?")) act("end");
  });

  function replay() {
    // Load every stored event, then rebuild the view up to the slider's position.
    const all = [];
    const pos = document.getElementById("replay-pos");
    const label = document.getElementById("replay-label");
    const play = document.getElementById("btn-play");
    const speed = document.getElementById("replay-speed");
    let timer = null;
    const show = (n) => {
      view.reset();
      view.apply(all.slice(0, n));
      pos.value = n;
      label.textContent = n + " / " + all.length + (n ? " · " + all[n - 1].at.slice(11, 19) : "");
    };
    const stream = new Dash.SessionStream(sessionId, {
      onEvents: (events) => { all.push(...events); window.__session.events = all; },
      onReplayDone: () => {
        stream.stop();
        Dash.setConn("closed", "replay · " + all.length + " events");
        pos.max = all.length;
        show(all.length);
        root.dataset.replayed = "1";
      },
    });
    stream.start();
    pos.addEventListener("input", () => { stop(); show(Number(pos.value)); });
    function stop() { clearTimeout(timer); timer = null; play.textContent = "▶ Play"; }
    function step(n) {
      if (n > all.length) return stop();
      view.apply([all[n - 1]]);
      pos.value = n;
      label.textContent = n + " / " + all.length + " · " + all[n - 1].at.slice(11, 19);
      if (n === all.length) return stop();
      const gap = (Date.parse(all[n].at) - Date.parse(all[n - 1].at)) / Number(speed.value);
      timer = setTimeout(() => step(n + 1), Math.max(0, Math.min(gap, 3000)));
    }
    play.addEventListener("click", () => {
      if (timer) return stop();
      play.textContent = "❚❚ Pause";
      let n = Number(pos.value);
      if (n >= all.length) n = 0;
      view.reset();
      view.apply(all.slice(0, n));
      step(n + 1);
    });
  }
})();
