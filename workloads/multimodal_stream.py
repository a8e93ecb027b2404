"""`multimodal_stream`: an always-on assistant in a pair of glasses, seeing and hearing on one device.

Two input streams share one device and one language model (issue 15; domain-facts section 7):
- camera frames arrive every 1/fps s. Each is encoded by a SigLIP vision tower into
  `tokens_per_frame` visual tokens (`frame_encode`), which the language model appends to its
  context (`context_update`: one forward over the frame's tokens into the KV cache), bounded by the
  context policy (workloads/bounded_context.py). A frame's deadline is the next frame's arrival.
  Frames are taken latest-first, as a camera with a one-frame buffer delivers them: when a frame
  ends after later frames have arrived, all but the newest of those are dropped (a `frame` span
  with dropped=1, no work); each taken frame is a `frame` span with its schedule and deadline.
- voice queries arrive by an arrival process of the load layer (profiler.arrival_schedule:
  Poisson at `rate_per_min`). A query's clock starts at its arrival (the end of the user's speech,
  `obs_ns`): speech recognition of its audio (`asr`: log-mel features and a Whisper
  encoder-decoder transcription of the question's tokens), the answer (`prefill` of the question
  over the current context, which hands over the first token, then one `decode` step per token),
  and, once the first `sentence_tokens` tokens exist, speech synthesis of that first sentence on
  its own thread (`tts`, VITS) while decoding goes on: its end is the time to first audio. Queries
  are answered one at a time in arrival order (a later one waits).
The two streams run concurrently with real wall-clock pacing: frames keep arriving while a query
is answered. Frames always run on their own thread and queries on the calling thread, in every
condition, so a stream alone and together runs on the same kind of thread. The language model is
one model behind a lock: a frame's context update and a query's forward take turns per forward pass.

Each iteration is one session of `session_s` seconds in one condition, cycling through
`conditions` (frames alone, queries alone, both): every span carries `condition`, and the
summary compares each phase across conditions (interference; Declaration.streams). The queries'
arrival times repeat across conditions of one cycle (same seed), so the comparison is paired.
Each session starts from an empty context primed with `prime_frames` frames of visual tokens
(by default enough to reach the policy's bound), so queries alone see the same context size as
queries with frames under a bounded policy.

Positions after eviction: see workloads/bounded_context.py (absolute positions continue; kept
keys keep their rotation). Random weights: the transcript, the answer and the audio are not
meaningful; their lengths and the work are the published models' (stream_presets.py).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from profiler import arrival_schedule, check_load
from profiler.plugin import Declaration, Mark, OneOf, QoE, Resources, SetupContext, StateLayer, Trait
from profiler.plugin import Params as BaseParams

from .decode_loop import cache_argument, parameter_facts, resolve_dtype
from .params import DTYPE_HELP, DTypeName, Pixels
from .stream_presets import STREAM_PRESETS, preset_help
from .vla import siglip_pixels, sleep_until

CONDITIONS = ("frames", "queries", "frames+queries")
SPEAKING_TOKENS_PER_S = 3.3
"""A question's audio lasts its tokens / 3.3 s: about 150 words per minute at 1.3 tokens per word."""
AUDIO_HZ = 16_000
ASR_PROMPT_TOKENS = 4
"""Whisper's decoder prompt (start of transcript, language, task, no timestamps) before the transcript's tokens."""


def _largest(sizes: dict[str, Any]) -> int | None:
    """The largest token count a size distribution draws (a validated `{fixed}`, `{uniform}` or `{lognormal}`); None: no cap."""
    if "fixed" in sizes:
        return int(sizes["fixed"])
    if "uniform" in sizes:
        return int(sizes["uniform"][1])
    cap = (sizes.get("lognormal") or {}).get("max")
    return None if cap is None else int(cap)


class ContextPolicy(BaseParams):
    """How the language model's context is bounded (workloads/bounded_context.py)."""

    policy: Literal["none", "sink_window", "visual_budget"] = Field(
        "sink_window", description="none (grows without end), sink_window (attention sinks + recent window), visual_budget (the newest visual tokens)."
    )
    window_tokens: int = Field(512, ge=1, le=10_000_000, description="sink_window: tokens kept (sinks + the most recent).")
    sink_tokens: int = Field(4, ge=0, le=10_000, description="sink_window: the first tokens always kept (StreamingLLM's attention sinks).")
    visual_tokens: int = Field(480, ge=1, le=10_000_000, description="visual_budget: visual tokens kept (text is never evicted).")


class Queries(BaseParams):
    """Voice queries: an arrival process of the load layer and the sizes of questions and answers (tokens)."""

    pattern: Literal["poisson", "gamma", "constant"] = Field("poisson", description="Arrival process (profiler/load/arrivals.py).")
    rate_per_min: float = Field(12.0, ge=0.01, le=6000, allow_inf_nan=False, description="Mean queries per minute, 0.01 to 6000.")
    burstiness: float | None = Field(
        None, ge=0.01, le=1000, allow_inf_nan=False, description="Gamma shape k (pattern gamma only), 0.01 to 1000 (gap CV 10 to 0.03)."
    )
    question_tokens: dict[str, Any] = Field({"fixed": 8}, description="Question length in tokens: {fixed: N}, {uniform: [lo, hi]}, {lognormal: {...}}.")
    answer_tokens: dict[str, Any] = Field({"fixed": 32}, description="Answer length in tokens (the same forms).")
    sentence_tokens: int = Field(12, ge=1, le=10_000, description="Tokens of the first sentence, synthesized to audio as soon as they exist.")

    @model_validator(mode="after")
    def _check(self) -> Queries:
        try:
            check_load(self.load(60.0, 0))
        except ValueError as exc:
            reason = str(exc).replace("sizes.input", "question_tokens").replace("sizes.output", "answer_tokens")
            raise ValueError(reason) from None
        return self

    def load(self, duration_s: float, seed: int) -> dict[str, Any]:
        """This block as a load layer `load:` mapping (rate per second)."""
        out: dict[str, Any] = {
            "pattern": self.pattern,
            "rate": self.rate_per_min / 60.0,
            "duration_s": duration_s,
            "seed": seed,
            "sizes": {"input": self.question_tokens, "output": self.answer_tokens},
        }
        if self.burstiness is not None:
            out["burstiness"] = self.burstiness
        return out


class MultimodalStream:
    """Camera frames at fps and voice queries by an arrival process, on one device (see the module docstring)."""

    class Params(BaseParams):
        preset: Annotated[str, OneOf(STREAM_PRESETS)] = Field("glasses-tiny", description=f"Model shapes: {preset_help()}.")
        fps: float = Field(2.0, ge=0.01, le=240, allow_inf_nan=False, description="Camera frames per second, 0.01 to 240 (streaming video LLMs sample 1-2).")
        tokens_per_frame: int | None = Field(None, ge=1, le=4096, description="Visual tokens per frame; default: the preset's.")
        camera_resolution: list[Pixels] = Field(
            [240, 320], min_length=2, max_length=2, description="Captured frame [height, width] before preprocessing, each 1 to 8192 pixels (8K)."
        )
        session_s: float = Field(
            15.0, ge=1, le=86_400, allow_inf_nan=False, description="Seconds of one session (one iteration, in one condition), 1 to 86,400."
        )
        conditions: list[Literal["frames", "queries", "frames+queries"]] = Field(
            list(CONDITIONS), min_length=1, description="Conditions the iterations cycle through (streams alone and together)."
        )
        context: ContextPolicy = Field(default_factory=ContextPolicy, description="How the context is bounded.")
        prime_frames: int | None = Field(
            None, ge=0, le=1_000_000, description="Frames appended before each session; default: enough to reach the bound (none: 0)."
        )
        queries: Queries = Field(default_factory=Queries, description="Voice queries.")
        listener: QoE = Field(
            QoE(expected_ttft_s=0.2, tokens_per_s=3.3),
            description="The listener the answers are judged by (Andes QoE): first audio expected within a turn gap (~0.2 s), then 3.3 tokens/s.",
        )
        dtype: DTypeName = Field("auto", description=DTYPE_HELP)

        @model_validator(mode="after")
        def _check(self) -> MultimodalStream.Params:
            tokens = self.frame_tokens
            k = math.isqrt(max(tokens - 1, 0))
            vision = STREAM_PRESETS[self.preset]["vision"]
            if tokens < 2 or k * k != tokens - 1 or k > vision["image_size"] // vision["patch_size"]:
                raise ValueError(
                    f"tokens_per_frame {tokens}: a frame is one pooled token + a k x k grid of the {vision['image_size'] // vision['patch_size']}-patch side "
                    f"(2, 5, 10, 17, ...); VideoLLM-online uses 10"
                )
            c = self.context
            if c.policy == "sink_window":
                if c.window_tokens < c.sink_tokens + tokens:
                    raise ValueError(
                        f"context.window_tokens {c.window_tokens} cannot hold the sinks ({c.sink_tokens}) and one frame's {tokens} tokens; "
                        f"give at least {c.sink_tokens + tokens}"
                    )
            elif c.policy == "visual_budget" and c.visual_tokens < tokens:
                raise ValueError(f"context.visual_tokens {c.visual_tokens} is smaller than one frame's {tokens} tokens; give at least {tokens}")
            if self.queries.pattern != "gamma" and self.queries.burstiness is not None:
                raise ValueError("queries.burstiness: only pattern gamma takes burstiness")
            asr = STREAM_PRESETS[self.preset]["asr"]
            limit = asr.get("max_target_positions", 448) - ASR_PROMPT_TOKENS
            longest = _largest(self.queries.question_tokens)
            if longest is None or longest > limit:
                got = "no cap (give lognormal max)" if longest is None else f"up to {longest}"
                raise ValueError(f"queries.question_tokens: {got}; the speech recognizer decodes at most {limit} tokens ({self.preset}), give at most {limit}")
            return self

        @property
        def frame_tokens(self) -> int:
            return self.tokens_per_frame or STREAM_PRESETS[self.preset]["tokens_per_frame"]

        @property
        def primed(self) -> int:
            """Frames appended before each session."""
            if self.prime_frames is not None:
                return self.prime_frames
            c = self.context
            bound = c.window_tokens if c.policy == "sink_window" else c.visual_tokens if c.policy == "visual_budget" else 0
            return -(-bound // self.frame_tokens)

    @classmethod
    def declaration(cls, params: MultimodalStream.Params) -> Declaration:
        """A request is one voice query, from its arrival; the step is one answer decode step; the first
        audio ends with the first `tts` span; frames carry deadlines; frames and queries are the streams."""
        return Declaration(
            output_unit="token",
            request="query",
            step="decode",
            deliveries=("prefill", "decode"),
            presentation="tts",
            qoe=params.listener,
            streams=("frames", "queries"),
            objective="first audio within a turn gap (~200 ms) while every camera frame meets its deadline",
            position_unit="token of the stream's context",
            state=f"the language model's KV cache over the stream, bounded by {params.context.policy}",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE, Trait.MULTIMODAL, Trait.STREAMING_INPUT}),
            resources=Resources(cpu_cores=2),
        )

    def __init__(self, params: MultimodalStream.Params) -> None:
        self.p = params
        self.iteration = 0
        self.models: Any = None

    # ------------------------------------------------------------------ setup

    def setup(self, ctx: SetupContext) -> None:
        import numpy as np
        import torch
        from transformers import AutoModelForCausalLM

        from .llm_presets import build_config
        from .stream_models import FrameEncoder, SpeechRecognizer, SpeechSynthesizer

        p = self.p
        preset = STREAM_PRESETS[p.preset]
        self.device = ctx.device
        self.dtype = resolve_dtype(p.dtype, ctx.device)
        self.seed = ctx.seed
        with torch.device(ctx.device):
            self.lm = AutoModelForCausalLM.from_config(build_config(preset["lm"])).to(self.dtype).eval()
            cfg = self.lm.config
            self.vision = FrameEncoder(preset["vision"], p.frame_tokens, cfg.hidden_size).to(self.dtype).eval()
            self.asr = SpeechRecognizer(preset["asr"]).to(self.dtype).eval()
            self.tts = SpeechSynthesizer(preset["tts"]).to(torch.float32).eval()
        for model in (self.lm, self.vision, self.asr, self.tts):  # inference only; and torch's module tracker (the FLOP
            model.requires_grad_(False)  # counter's) fails on VITS's weight-norm parametrizations of grad-requiring weights
        rng = np.random.default_rng(ctx.seed)
        h, w = p.camera_resolution
        self.frames = torch.from_numpy(rng.integers(0, 256, (8, h, w, 3), dtype=np.uint8))
        self.speech = (0.1 * rng.standard_normal(AUDIO_HZ * 60)).astype(np.float32)  # a minute of audio to cut clips from
        self.lm_lock = threading.Lock()
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.kv_bytes_per_token = 2 * cfg.num_hidden_layers * kv_heads * head_dim * torch.finfo(self.dtype).bits // 8
        c = p.context
        bound = {"sink_window": c.window_tokens, "visual_budget": c.visual_tokens}.get(c.policy)
        per_layer = self.kv_bytes_per_token // cfg.num_hidden_layers
        if c.policy == "sink_window":
            layer = StateLayer(kind="sliding_window", bytes_per_token=per_layer, bound_tokens=c.window_tokens, count=cfg.num_hidden_layers)
        else:  # visual_budget bounds the visual part only: text keeps growing
            layer = StateLayer(kind="full_attention", bytes_per_token=per_layer, count=cfg.num_hidden_layers)
        ctx.declare_state([layer])
        counts = {"vision": parameter_facts(self.vision)["param_count"], "lm": parameter_facts(self.lm)["param_count"]}
        counts.update(asr=parameter_facts(self.asr)["param_count"], tts=parameter_facts(self.tts)["param_count"])
        ctx.declare(
            fps=p.fps,
            frame_period_s=1.0 / p.fps,
            tokens_per_frame=p.frame_tokens,
            visual_tokens_per_minute=round(p.frame_tokens * p.fps * 60),
            kv_bytes_per_token=self.kv_bytes_per_token,
            kv_growth_bytes_per_minute_unbounded=self.kv_bytes_per_token * p.frame_tokens * p.fps * 60,
            context_policy=c.policy,
            context_bound_tokens=bound,
            context_bound_bytes=bound * self.kv_bytes_per_token if bound else None,
            context_bound_applies_to="visual tokens only; text grows" if c.policy == "visual_budget" else ("all tokens" if bound else None),
            positions_after_eviction="absolute positions continue; kept keys keep their original rotation (bounded_context.py)",
            prime_frames=p.primed,
            session_s=p.session_s,
            conditions=list(p.conditions),
            query_arrivals=f"{p.queries.pattern}, {p.queries.rate_per_min:g} per minute",
            sentence_tokens=p.queries.sentence_tokens,
            listener=p.listener.stated(),
            asr_window_s=self.asr.mel_frames / 100.0,
            tts_sampling_rate=self.tts.sampling_rate,
            dtype=str(self.dtype).removeprefix("torch."),
            param_count=sum(counts.values()),
            param_count_by_part=counts,
            published_param_count=preset.get("published_params") or None,
            weights=f"random, from preset {p.preset}",
            lm_max_position_embeddings=cfg.max_position_embeddings,
        )
        self._new_context()
        self._prime(1)  # a first pass through every kernel path, outside the measured loop

    # ------------------------------------------------------------------ one session

    def run_once(self, mark: Mark) -> None:
        p = self.p
        condition = p.conditions[self.iteration % len(p.conditions)]
        cycle = self.iteration // len(p.conditions)
        self.iteration += 1
        self._new_context()
        self._prime(p.primed)
        errors: list[BaseException] = []
        start_ns = time.monotonic_ns() + 50_000_000  # both streams start together, 50 ms from now
        # frames always run on their own thread and queries always on the calling thread, in every condition: a stream's
        # latency alone and together is then measured on the same kind of thread (a worker thread's torch ops ran 20-50%
        # slower than the main thread's here, which would otherwise pass for interference). The untimed counting and
        # tracing passes see the calling thread only: the queries' work (the answer's decode is the step).
        threads = []
        if "frames" in condition:
            threads.append(threading.Thread(target=self._guard, args=(errors, self._frames, mark, condition, start_ns), name="frames", daemon=True))
        for t in threads:
            t.start()
        if "queries" in condition:
            schedule = arrival_schedule(p.queries.load(p.session_s, self.seed * 100_003 + cycle))
            self._guard(errors, self._queries, mark, condition, start_ns, schedule)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    @staticmethod
    def _guard(errors: list[BaseException], target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # raised on the calling thread once both streams stop
            errors.append(exc)

    # ------------------------------------------------------------------ frames

    def _frames(self, mark: Mark, condition: str, start_ns: int) -> None:
        p = self.p
        period = round(1e9 / p.fps)
        count = max(1, int(p.session_s * p.fps))
        k = 0
        while k < count:
            scheduled = start_ns + k * period
            sleep_until(scheduled)
            with mark("frame", condition=condition, scheduled_ns=scheduled, deadline_ns=scheduled + period, dropped=0, frame=k):
                self._take_frame(mark, condition, k)
            arrived = min(count - 1, (time.monotonic_ns() - start_ns) // period)  # the newest frame the camera holds now
            for j in range(k + 1, arrived):  # older ones were overwritten in the one-frame buffer
                with mark("frame", condition=condition, deadline_ns=start_ns + (j + 1) * period, dropped=1, frame=j):
                    pass
            k = max(k + 1, arrived)

    def _take_frame(self, mark: Mark, condition: str, index: int) -> None:
        import torch

        with mark("frame_encode", condition=condition):
            pixels = self._preprocess(self.frames[index % len(self.frames)])
            with torch.inference_mode():
                embeds = self.vision(pixels)  # [1, tokens_per_frame, hidden]
            _sync(embeds)
        self._append_embeds(mark, condition, embeds)

    def _preprocess(self, frame: Any) -> Any:
        """uint8 [h, w, 3] -> [1, 3, S, S], SigLIP's input on the device (vla.siglip_pixels)."""
        return siglip_pixels(frame[None], self.device, self.vision.image_size, self.dtype)

    def _append_embeds(self, mark: Mark, condition: str, embeds: Any) -> None:
        import torch

        from .bounded_context import VISUAL

        tokens = embeds.shape[1]
        with mark("context_update", condition=condition) as span, self.lm_lock, torch.inference_mode():
            self.lm.model(inputs_embeds=embeds, position_ids=self.context.positions(tokens, self.device), **self.cache_kw, use_cache=True)
            evicted = self.context.appended(tokens, VISUAL)
            _sync(self.cache.layers[0].keys)
            span.attrs.update(position=self.context.position, state_bytes=self._kv_bytes(), evicted=evicted)

    # ------------------------------------------------------------------ queries

    def _queries(self, mark: Mark, condition: str, start_ns: int, schedule: list[Any]) -> None:
        for r in schedule:
            arrival = start_ns + round(r.send_s * 1e9)
            sleep_until(arrival)
            self._answer(mark, condition, r.index, arrival, r.input_tokens, r.output_tokens)

    def _answer(self, mark: Mark, condition: str, rid: int, arrival_ns: int, question: int, answer: int) -> None:
        import torch

        from .bounded_context import TEXT

        p = self.p
        tts: threading.Thread | None = None
        tts_error: list[BaseException] = []
        with mark("query", request_id=rid, obs_ns=arrival_ns, condition=condition, question_tokens=question, answer_tokens=answer):
            with mark("asr", request_id=rid, condition=condition) as span, torch.inference_mode():
                seconds = min(question / SPEAKING_TOKENS_PER_S, self.asr.mel_frames / 100.0)
                offset = (rid * 7919) % (len(self.speech) - AUDIO_HZ * 31)
                features = self.asr.features(self.speech[offset : offset + round(seconds * AUDIO_HZ)]).to(self.device, self.dtype)
                transcript = self.asr.transcribe(features, question)  # [1, question]
                transcript.cpu()
            span.attrs["audio_s"] = seconds
            ids = (transcript % self.lm.config.vocab_size).to(self.device)
            spoken: list[Any] = []
            with mark("prefill", units=1, sequences=1, request_id=rid, condition=condition) as span, self.lm_lock, torch.inference_mode():
                out = self.lm(input_ids=ids, position_ids=self.context.positions(question, self.device), **self.cache_kw, use_cache=True, logits_to_keep=1)
                token = out.logits[:, -1].argmax(-1)  # [1]
                self.context.appended(question, TEXT)
                token.cpu()
                span.attrs.update(position=self.context.position, state_bytes=self._kv_bytes())
            spoken.append(token)
            for _ in range(1, answer):
                if tts is None and len(spoken) >= p.queries.sentence_tokens:
                    tts = self._speak(mark, condition, rid, spoken, tts_error)
                with mark("decode", units=1, sequences=1, request_id=rid, condition=condition) as span, self.lm_lock, torch.inference_mode():
                    out = self.lm(input_ids=token[:, None], position_ids=self.context.positions(1, self.device), **self.cache_kw, use_cache=True)
                    token = out.logits[:, -1].argmax(-1)
                    self.context.appended(1, TEXT)
                    token.cpu()
                    span.attrs.update(position=self.context.position, state_bytes=self._kv_bytes())
                spoken.append(token)
            if tts is None:  # an answer shorter than a sentence is spoken whole
                tts = self._speak(mark, condition, rid, spoken, tts_error)
            tts.join()
        if tts_error:
            raise tts_error[0]

    def _speak(self, mark: Mark, condition: str, rid: int, tokens: list[Any], errors: list[BaseException]) -> threading.Thread:
        import torch

        ids = torch.cat(list(tokens))[None] % self.tts.vocab_size  # [1, sentence]

        def run() -> None:
            try:
                with mark("tts", request_id=rid, condition=condition) as span, torch.inference_mode():
                    wave = self.tts.synthesize(ids.to(self.device))
                    wave.cpu()
                span.attrs["audio_s"] = wave.shape[-1] / self.tts.sampling_rate
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run, name="tts", daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------ context

    def _new_context(self) -> None:
        from transformers import DynamicCache

        from .bounded_context import BoundedContext

        c = self.p.context
        self.cache = DynamicCache(config=self.lm.config)
        self.cache_kw = {cache_argument(type(self.lm.model)): self.cache}  # the same keyword for the LM and its base model
        self.context = BoundedContext(self.cache, c.policy, window_tokens=c.window_tokens, sink_tokens=c.sink_tokens, visual_tokens=c.visual_tokens)

    def _prime(self, frames: int) -> None:
        """Append `frames` frames' visual tokens, untimed (no spans): the context a session starts from."""
        import torch

        from .bounded_context import VISUAL

        with torch.inference_mode():
            for i in range(frames):
                embeds = self.vision(self._preprocess(self.frames[i % len(self.frames)]))
                tokens = embeds.shape[1]
                self.lm.model(inputs_embeds=embeds, position_ids=self.context.positions(tokens, self.device), **self.cache_kw, use_cache=True)
                self.context.appended(tokens, VISUAL)

    def _kv_bytes(self) -> int:
        return sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in self.cache.layers if getattr(layer, "keys", None) is not None)

    def teardown(self) -> None:
        self.lm = self.vision = self.asr = self.tts = self.cache = None


def _sync(t: Any) -> None:
    import torch

    if t.is_cuda:
        torch.cuda.synchronize()
