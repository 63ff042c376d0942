// AudioWorklet: microphone samples (the context's rate) → PCM16 mono frames at a fixed
// rate (processorOptions.rate, default 16000) of frameMs (default 20), posted as
// {pcm: ArrayBuffer, rms} to the main thread. Downsampling averages the input samples each
// output sample covers (a box filter: enough against aliasing for speech recognition).
// While muted, frames keep coming but carry silence, so the session's VAD sees the end.
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.rate = o.rate || 16000;
    this.step = sampleRate / this.rate;        // input samples per output sample
    this.frame = new Int16Array(Math.round(this.rate * (o.frameMs || 20) / 1000));
    this.n = 0;                                // samples in the current frame
    this.sum = 0; this.count = 0; this.due = this.step;
    this.sq = 0;
    this.muted = false;
    this.port.onmessage = (e) => { if (e.data && "muted" in e.data) this.muted = !!e.data.muted; };
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input.length) return true;
    const ch = input[0];
    for (let i = 0; i < ch.length; i++) {
      this.sum += ch[i]; this.count++;
      if (this.count >= this.due) {
        this.due += this.step - this.count;
        const v = this.muted ? 0 : Math.max(-1, Math.min(1, this.sum / this.count));
        this.sum = 0; this.count = 0;
        this.frame[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
        this.sq += v * v;
        if (this.n === this.frame.length) this.flush();
      }
    }
    return true;
  }

  flush() {
    const pcm = this.frame.slice().buffer;
    this.port.postMessage({ pcm, rms: Math.sqrt(this.sq / this.n) }, [pcm]);
    this.n = 0; this.sq = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);
