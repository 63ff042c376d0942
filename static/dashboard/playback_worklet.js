// AudioWorklet: the agent's PCM16 frames (any rate) → the context's output, through a small
// jitter buffer. Playback starts once the target (`jitterMs`, 80 by default) is queued, or
// once no more audio has come for that long (the tail of a reply), and falls back to
// buffering when it runs dry. Running dry mid-speech (audio resumes within 300 ms) raises the
// target by half the base, up to four times it: a late network or a busy machine then costs
// one gap, not one per frame; a quiet spell after a speech eases it back. A "clear" message (the agent was interrupted) drops everything
// queued at once.
//   port ← {type: "pcm", pcm: ArrayBuffer (int16 LE mono), rate} · {type: "clear"}
//   port → {type: "state", playing, queuedMs, targetMs} whenever playing starts or stops
class PcmPlayback extends AudioWorkletProcessor {
  constructor(options) {
    const o = (options && options.processorOptions) || {};
    super();
    this.base = Math.round(sampleRate * (o.jitterMs || 80) / 1000);
    this.jitter = this.base;
    this.dry = -1;         // output samples since playback ran dry (-1: not dry)
    this.chunks = [];      // Float32Arrays at sampleRate
    this.head = 0;         // read offset into chunks[0]
    this.queued = 0;
    this.playing = false;
    this.idle = 0;         // output samples since the last chunk arrived
    this.pos = 0;          // resampler phase (source samples) and the last source sample
    this.last = 0;
    this.port.onmessage = (e) => this.message(e.data);
  }

  message(m) {
    if (m.type === "clear") {
      this.chunks = []; this.head = 0; this.queued = 0; this.pos = 0; this.last = 0; this.dry = -1;
      this.setPlaying(false);
    } else if (m.type === "pcm") {
      const src = new Int16Array(m.pcm);
      const out = this.resample(src, m.rate);
      if (!out.length) return;
      if (this.dry >= 0 && this.dry < sampleRate * 0.3) this.jitter = Math.min(4 * this.base, this.jitter + this.base / 2);
      this.dry = -1;
      this.chunks.push(out);
      this.queued += out.length;
      this.idle = 0;
    }
  }

  // Linear interpolation from `rate` to the context's rate, continuous across chunks.
  resample(src, rate) {
    const step = rate / sampleRate;
    const n = Math.max(0, Math.floor((src.length - this.pos) / step));
    const out = new Float32Array(n);
    let p = this.pos;
    for (let i = 0; i < n; i++, p += step) {
      const k = Math.floor(p);
      const a = k < 0 ? this.last : src[k] / 32768;
      const b = k + 1 < src.length ? src[k + 1] / 32768 : a;
      out[i] = a + (b - a) * (p - k);
    }
    this.pos = p - src.length;  // in (-1, 0]: the next chunk starts between `last` and its first
    this.last = src.length ? src[src.length - 1] / 32768 : this.last;
    return out;
  }

  setPlaying(on) {
    if (on === this.playing) return;
    this.playing = on;
    this.port.postMessage({ type: "state", playing: on, queuedMs: this.queued / sampleRate * 1000, targetMs: this.jitter / sampleRate * 1000 });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    this.idle += out.length;
    if (this.dry >= 0) {
      this.dry += out.length;
      // a quiet spell after a speech: ease the target back towards the base
      if (this.dry >= sampleRate * 0.3 && this.dry - out.length < sampleRate * 0.3) this.jitter = Math.max(this.base, this.jitter - this.base / 4);
    }
    if (!this.playing && this.queued > 0 && (this.queued >= this.jitter || this.idle >= this.jitter)) this.setPlaying(true);
    let i = 0;
    if (this.playing) {
      while (i < out.length && this.chunks.length) {
        const c = this.chunks[0];
        const take = Math.min(out.length - i, c.length - this.head);
        out.set(c.subarray(this.head, this.head + take), i);
        i += take; this.head += take; this.queued -= take;
        if (this.head >= c.length) { this.chunks.shift(); this.head = 0; }
      }
      if (!this.chunks.length) { this.dry = 0; this.setPlaying(false); }  // underrun or end: buffer again
    }
    out.fill(0, i);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("pcm-playback", PcmPlayback);
