// The agent's voice in the page: PCM16 frames from the audio socket → the playback worklet
// (jitter buffer) → an AnalyserNode → the speakers. The analyser is polled every 10 ms for
// the level meter and for `trace`: [t (performance.now ms), rms] samples that tests read,
// and `bargeIns`: how long playback took to fall silent after the session interrupted.
(function () {
  "use strict";
  const SILENT_RMS = 0.003;   // ~-50 dBFS: below this the analyser hears nothing
  const TRACE_MAX = 6000;     // one minute of 10 ms samples

  class VoicePlayback {
    constructor(ctx, opts) {
      this.ctx = ctx;
      this.opts = opts || {};
      this.rate = 24000;
      this.trace = [];
      this.bargeIns = [];
      this.pending = null;    // the barge-in waiting for silence
      this.rms = 0;
      this.peakRms = 0;
      this.playing = false;
    }
    async start() {
      await this.ctx.audioWorklet.addModule(this.opts.worklet);
      this.node = new AudioWorkletNode(this.ctx, "pcm-playback", { outputChannelCount: [1], processorOptions: { jitterMs: this.opts.jitterMs || 80 } });
      this.node.port.onmessage = (e) => {
        if (e.data.type !== "state") return;
        this.playing = e.data.playing;
        this.targetMs = e.data.targetMs;
        if (!e.data.playing) this.runsDry = (this.runsDry || 0) + 1;
      };
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 512;
      this.buf = new Float32Array(this.analyser.fftSize);
      this.node.connect(this.analyser);
      this.analyser.connect(this.ctx.destination);
      this.timer = setInterval(() => this.poll(), 10);
      return this;
    }
    format(rate) { this.rate = rate; }
    push(arrayBuffer) { this.node.port.postMessage({ type: "pcm", pcm: arrayBuffer, rate: this.rate }, [arrayBuffer]); }
    // Drop everything queued now. `why` is "interrupted" (the session's event) or "clear"
    // (the audio socket's control message); whichever comes first starts the stop clock.
    clear(why) {
      this.node.port.postMessage({ type: "clear" });
      const now = performance.now();
      // audible just before (within 300 ms: a gap between words is no reason to doubt it)
      if (!this.pending) this.pending = { interruptedAt: null, clearAt: null, silentAt: undefined, wasPlaying: this.heardSince(now - 300) };
      const b = this.pending;
      if (why === "interrupted" && b.interruptedAt === null) b.interruptedAt = now;
      if (why !== "interrupted" && b.clearAt === null) b.clearAt = now;
      this.quiet = 0;
      this.finish();
    }
    heardSince(t) {
      for (let i = this.trace.length - 1; i >= 0 && this.trace[i][0] >= t; i--) if (this.trace[i][1] >= SILENT_RMS) return true;
      return false;
    }
    poll() {
      this.analyser.getFloatTimeDomainData(this.buf);
      let sq = 0;
      for (let i = 0; i < this.buf.length; i++) sq += this.buf[i] * this.buf[i];
      this.rms = Math.sqrt(sq / this.buf.length);
      this.peakRms = Math.max(this.peakRms, this.rms);
      const t = performance.now();
      if (this.trace.length >= TRACE_MAX) this.trace.splice(0, 1000);
      this.trace.push([Math.round(t), Number(this.rms.toFixed(5))]);
      // silent = three polls in a row below the threshold (a gap between words is not a stop)
      const p = this.pending;
      if (p && p.silentAt === undefined) {
        this.quiet = this.rms < SILENT_RMS ? this.quiet + 1 : 0;
        if (this.quiet === 1) p.quietFrom = t;
        if (this.quiet >= 3) { p.silentAt = p.quietFrom; this.finish(); }
      }
      if (this.opts.onLevel) this.opts.onLevel(this.rms);
    }
    // A barge-in is recorded once the page knows when it interrupted and when it fell silent.
    finish() {
      const b = this.pending;
      if (!b || b.interruptedAt === null || b.interruptedAt === undefined || b.silentAt === undefined) return;
      b.stopMs = Math.max(0, b.silentAt - b.interruptedAt);
      this.bargeIns.push(b);
      this.pending = null;
    }
    stop() { clearInterval(this.timer); if (this.node) this.node.disconnect(); }
  }

  window.VoicePlayback = VoicePlayback;
})();
