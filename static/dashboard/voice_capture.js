// The microphone in the page: getUserMedia (echo cancellation, noise suppression) → the
// capture worklet → PCM16 mono frames at `rate` (20 ms each) → onFrame(ArrayBuffer).
// onLevel(rms) gets each frame's level for the meter; setMuted(true) sends silence.
(function () {
  "use strict";

  class VoiceCapture {
    constructor(ctx, opts) {
      this.ctx = ctx;
      this.opts = opts;
      this.rate = opts.rate || 16000;
      this.muted = false;
      this.frames = 0;
    }
    async start() {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      await this.ctx.audioWorklet.addModule(this.opts.worklet);
      this.source = this.ctx.createMediaStreamSource(this.stream);
      this.node = new AudioWorkletNode(this.ctx, "pcm-capture", { numberOfOutputs: 0, processorOptions: { rate: this.rate, frameMs: 20 } });
      this.node.port.onmessage = (e) => {
        this.frames++;
        this.opts.onFrame(e.data.pcm);
        if (this.opts.onLevel) this.opts.onLevel(e.data.rms);
      };
      this.source.connect(this.node);
      return this;
    }
    setMuted(on) {
      this.muted = !!on;
      if (this.node) this.node.port.postMessage({ muted: this.muted });
    }
    stop() {
      if (this.source) this.source.disconnect();
      if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); }
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.source = this.node = this.stream = null;
    }
  }

  window.VoiceCapture = VoiceCapture;
})();
