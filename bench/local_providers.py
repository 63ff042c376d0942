"""The local providers' latencies, and what pocketsphinx decoding does to the event loop.

    .venv/bin/python bench/local_providers.py [--runs 20]

1. scripted LLM: time to first token and to the whole demo reply (tool call → reply).
2. espeak TTS: time to first audio and real-time factor per demo sentence.
3. pocketsphinx with the demo grammar: decode time per demo utterance.
4. the event loop's largest gap while dictation is decoded: in the decoder process (what the
   provider does) against a decode on a thread of this process (the baseline: pocketsphinx's
   bindings hold the GIL), measured in the same run.

Prints the figures and ends with one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.demo_config import FALLBACK, GRAMMAR, RULES  # noqa: E402
from runtime.provider_configs import parse_provider_config  # noqa: E402
from bench.common import summary  # noqa: E402
from runtime.audio import read_wav, resample_to  # noqa: E402
from runtime.providers import EspeakTTS, PocketsphinxSTT, build_llm  # noqa: E402
from runtime.providers.pocketsphinx_worker import build_decoder, decode  # noqa: E402

QUESTIONS = ["What's the weather in Paris?", "What is the weather like in Paris today?", "How is the weather in Tokyo?",
             "Hello", "What can you do?", "Thank you"]
WEATHER_TOOL = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def espeak_wav(text: str, folder: str) -> tuple[np.ndarray, int]:
    path = os.path.join(folder, f"{abs(hash(text))}.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", path, text], check=True)
    samples, rate, _ = read_wav(path)
    return samples, rate


async def bench_scripted(runs: int) -> dict[str, object]:
    llm = build_llm(parse_provider_config("llm", {"provider": "scripted", "rules": RULES, "fallback": FALLBACK}))
    first, whole = [], []
    for _ in range(runs):
        messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "What's the weather in Paris?"}]
        t0 = time.perf_counter()
        call = None
        async for d in llm.chat(messages, tools=WEATHER_TOOL):
            if d.kind == "tool_calls":
                call = d.tool_calls[0]
        assert call is not None
        messages += [{"role": "assistant", "content": None, "tool_calls": [
                         {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]},
                     {"role": "tool", "tool_call_id": call.call_id, "content": "The weather in Paris is sunny, 21°C."}]
        t1 = None
        async for d in llm.chat(messages, tools=WEATHER_TOOL):
            if d.kind == "text" and t1 is None:
                t1 = time.perf_counter()
        first.append(((t1 or time.perf_counter()) - t0) * 1000)
        whole.append((time.perf_counter() - t0) * 1000)
    return {"first_token": summary(first, digits=3), "reply": summary(whole, digits=3)}


async def bench_espeak(runs: int) -> dict[str, object]:
    tts = EspeakTTS()
    ttfb, rtf = [], []
    for i in range(runs):
        text = f"The weather in Paris is sunny, {i} degrees."
        t0 = time.perf_counter()
        first = None
        samples = 0
        async for chunk in tts.synthesize(text):
            first = first or time.perf_counter()
            samples += chunk.size
        took = time.perf_counter() - t0
        ttfb.append(((first or t0) - t0) * 1000)
        rtf.append(took / (samples / tts.sample_rate))
    return {"ttfb": summary(ttfb), "real_time_factor_p50": round(sorted(rtf)[len(rtf) // 2], 4)}


async def bench_grammar(runs: int, folder: str) -> dict[str, object]:
    stt = PocketsphinxSTT(grammar=GRAMMAR)
    clips = [espeak_wav(q, folder) for q in QUESTIONS]
    await stt.transcribe(*clips[0])  # start the decoder process and load its model
    ms, correct = [], 0
    for i in range(runs):
        samples, rate = clips[i % len(clips)]
        t0 = time.perf_counter()
        text = (await stt.transcribe(samples, rate)).text
        ms.append((time.perf_counter() - t0) * 1000)
        correct += text == QUESTIONS[i % len(clips)].lower().rstrip("?.")
    return {"decode": summary(ms), "exact": f"{correct}/{runs}"}


async def loop_gap_during(work: "asyncio.Future[object]") -> float:
    gaps: list[float] = []
    last = time.perf_counter()
    while not work.done():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    await work
    return max(gaps) * 1000


async def bench_loop_gap(folder: str) -> dict[str, float]:
    samples, rate = espeak_wav("What is the weather like in Paris today? " * 2, folder)
    stt = PocketsphinxSTT()  # dictation: the heaviest decode
    await stt.transcribe(samples[: rate // 2], rate)  # warm the decoder process
    provider_gap = await loop_gap_during(asyncio.ensure_future(stt.transcribe(samples, rate)))
    audio = resample_to(samples, rate, 16_000).astype("<i2").tobytes()
    decoder = build_decoder(None)
    thread_gap = await loop_gap_during(asyncio.ensure_future(asyncio.to_thread(decode, decoder, audio)))
    return {"decoder_process_max_gap_ms": round(provider_gap, 1), "thread_max_gap_ms": round(thread_gap, 1),
            "ratio_thread_to_process": round(thread_gap / max(provider_gap, 0.001), 1)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"local providers bench - python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        scripted = await bench_scripted(args.runs)
        print(f"1. scripted LLM, tool call + reply: first token {scripted['first_token']}, whole {scripted['reply']}")
        espeak = await bench_espeak(args.runs)
        print(f"2. espeak TTS per sentence: ttfb {espeak['ttfb']}, real-time factor p50 {espeak['real_time_factor_p50']}")
        grammar = await bench_grammar(args.runs, folder)
        print(f"3. pocketsphinx, demo grammar: decode {grammar['decode']}, exact transcripts {grammar['exact']}")
        gap = await bench_loop_gap(folder)
        print(f"4. event loop's largest gap while dictation decodes: decoder process {gap['decoder_process_max_gap_ms']} ms, "
              f"thread in this process {gap['thread_max_gap_ms']} ms (x{gap['ratio_thread_to_process']})")
    print(json.dumps({"bench": "local_providers", "scripted": scripted, "espeak": espeak, "pocketsphinx_grammar": grammar,
                      "loop_gap": gap, "load_avg": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    asyncio.run(main())
