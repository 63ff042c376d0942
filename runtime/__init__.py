"""The voice session runtime: plain asyncio + numpy, no Django.

Build one from an agent config snapshot with `sessions.launch.build_session(...)`, or by
hand:

    session = AgentSession(options=SessionOptions(instructions=..., session_id=..., agent_id=...),
                           llm=..., stt=..., tts=..., tools=executor, sink=sink,
                           transport=LocalTransport())
    await session.start()                 # connects the transport; status → connected → active
    session.push_text("hi")               # user text: ends a turn at once, returns a SpeechHandle
    session.push_audio(pcm, 48000, 2)     # user audio (sync, per frame; any rate / channels)
    h = session.say("Hello!", allow_interruptions=False)
    h = session.generate_reply(instructions="Greet the user.")
    await h                               # = await h.wait_for_playout(); h.interrupted tells how it ended
    session.interrupt()                   # stops the current speech within one audio frame
    session.operator_action("say" | "interrupt" | "message" | "end" | "pause" | "resume", text=..., by=...)
    session.end("reason")                 # request a stop from anywhere on the loop
    await session.stop("reason")          # stop and wait (idempotent)
    reason = await session.wait_closed()  # returns once the session has ended
    await session.wait_idle()             # nothing pending: no user turn, no agent speech

State: `status`, `agent_state`, `user_state`, `history`, `user_data`, `audio_state`,
`participants`, `current_speech`. Events go to the sink (typed models from `events`);
`session.on(type, cb)` subscribes in-process ("*" for all; "audio_in_frame" and
"audio_out_frame" for every frame). All methods must be called on the session's event
loop; from another thread use `loop.call_soon_threadsafe`.

`SessionOptions.vad` and `.turn` are the agent's own config models
(`runtime.provider_configs.WebRTCVADConfig`, `TurnConfig`), used as they are.
"""
from .session import AgentSession, AudioState, SessionOptions
from .speech import SpeechHandle

__all__ = ["AgentSession", "AudioState", "SessionOptions", "SpeechHandle"]
