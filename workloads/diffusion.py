"""`diffusion`: text-to-image or class-to-image generation, run as diffusers' pipelines run it.

Why it exists: diffusion is the iterative-refinement workload (a fixed number of denoising steps
over a constant-size latent), the opposite of LLM decode's growing KV cache. Two sources:
- a preset (diffusion_presets.py): the published shapes of Stable Diffusion 1.5 (UNet) or
  DiT-XL/2 (class-conditional transformer), or tiny ones, with random weights; random prompt
  token ids (CLIP's 77) go straight to the text encoder; DDIM (default) or Euler;
- `pretrained:` a local diffusers pipeline directory. Its family is the pipeline class named by
  model_index.json `_class_name` (see PIPELINE_COMPONENTS): StableDiffusionPipeline (SD 1.x,
  2.x), StableDiffusionXLPipeline (two CLIP text encoders; the UNet also takes the pooled text
  embedding and `add_time_ids`), DiTPipeline (class labels), PixArtAlphaPipeline and
  PixArtSigmaPipeline (a T5 encoder, PixArtTransformer2DModel). diffusers' loader builds it, the
  pipeline's own `encode_prompt` tokenizes and encodes the prompt, and the directory's scheduler
  (the class its scheduler_config.json names, with that config) steps it unless `scheduler:`
  overrides the class. Any other directory is refused in setup with one line saying why.
One iteration is one batch of images, with each phase marked:
- `text_encode`: every text encoder over the prompt and, with guidance, the negative prompt
  (SDXL's empty negative prompt is zeros, as its pipeline does with force_zeros_for_empty_prompt);
- `denoise_step`: one per scheduler timestep (a second-order scheduler such as Heun has more
  timesteps than steps, as in the pipelines). With classifier-free guidance (guidance_scale > 1)
  the denoiser batch is twice the image batch (`torch.cat([latents] * 2)`, as in diffusers'
  pipelines). On CUDA each step ends with a synchronize, so the host span is the step's real
  duration (a pipeline's progress callback waits the same way);
- `vae_decode`: AutoencoderKL decodes the latent; the images reach the host (the delivery). The
  pipelines' safety checker and watermarker (post-processing of PIL images) are not loaded.
The state is the latent, overwritten every step: constant across steps, measured each step.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from profiler.plugin import Declaration, Mark, OneOf, SetupContext, StateLayer, Trait
from profiler.plugin import Params as BaseParams

from .decode_loop import parameter_facts, resolve_dtype
from .diffusion_presets import DIFFUSION_PRESETS
from .params import DTYPE_HELP, DTypeName, check_one_source, check_pretrained_dir

TEXT_TOKENS = 77  # CLIP's context length, what SD pipelines pad every prompt to (presets)
PROMPT = "a photograph of an astronaut riding a horse"  # diffusers' documentation prompt (pretrained)

PIPELINE_COMPONENTS: dict[str, tuple[str, ...]] = {
    # model_index.json `_class_name` -> the components its text-to-image loop cannot run without
    "StableDiffusionPipeline": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "StableDiffusionXLPipeline": ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler"),
    "DiTPipeline": ("transformer", "vae", "scheduler"),
    "PixArtAlphaPipeline": ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
    "PixArtSigmaPipeline": ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
}
SCHEDULER_OVERRIDES = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler"}
SCHEDULER_FACTS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "timestep_spacing")


class Diffusion:
    """Diffusion image generation: text encode, N denoise steps (CFG doubles the batch), VAE decode."""

    class Params(BaseParams):
        preset: Annotated[str, OneOf(DIFFUSION_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights: {', '.join(DIFFUSION_PRESETS)}. Default sd-tiny unless `pretrained` is set."
        )
        pretrained: str | None = Field(
            None,
            description=f"Local diffusers text-to-image pipeline directory (model_index.json): {', '.join(PIPELINE_COMPONENTS)}; local files only.",
        )
        batch_size: int = Field(1, ge=1, le=1024, description="Images generated together.")
        height: int | None = Field(None, ge=8, le=8192, description="Image height in pixels; default: the preset's or the denoiser's native size.")
        width: int | None = Field(None, ge=8, le=8192, description="Image width in pixels; default: the preset's or the denoiser's native size.")
        steps: int = Field(20, ge=1, le=10_000, description="Denoising steps (diffusers defaults to 50; MLPerf SDXL uses 20).")
        guidance_scale: float = Field(
            7.5, ge=1.0, le=100.0, allow_inf_nan=False, description="Classifier-free guidance, 1 to 100; > 1 doubles the denoiser batch."
        )
        scheduler: Literal["ddim", "euler"] | None = Field(
            None,
            description="Override: DDIMScheduler or EulerDiscreteScheduler (with a pretrained directory's scheduler config). "
            "Default: the pretrained directory's own scheduler, or ddim for presets.",
        )
        dtype: DTypeName = Field("auto", description=DTYPE_HELP)

        @field_validator("pretrained")
        @classmethod
        def _directory_exists(cls, path: str | None) -> str | None:
            return check_pretrained_dir(path, "model_index.json")

        @model_validator(mode="after")
        def _check(self) -> Diffusion.Params:
            check_one_source(self.preset, self.pretrained)
            if self.pretrained is None:
                multiple = DIFFUSION_PRESETS[self.preset_name]["size_multiple"]
                for name in ("height", "width"):
                    value = getattr(self, name)
                    if value is not None and value % multiple:
                        raise ValueError(f"{name} {value} is not divisible by {multiple} (VAE factor x denoiser downsampling for {self.preset_name})")
            return self

        @property
        def preset_name(self) -> str:
            return self.preset or "sd-tiny"

    @classmethod
    def declaration(cls, params: Diffusion.Params) -> Declaration:
        """One request = one batch of images; one step = one denoising step (position counts steps)."""
        return Declaration(
            output_unit="image",
            step="denoise_step",
            deliveries=("vae_decode",),
            position_unit="denoising step",
            state="latent",
            traits=frozenset({Trait.ITERATIVE_REFINEMENT, Trait.CONSTANT_STATE}),
        )

    def __init__(self, params: Diffusion.Params) -> None:
        self.p = params
        self.parts: dict[str, Any] = {}
        self.pipe: Any = None

    # ------------------------------------------------------------------ setup

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        self.device = ctx.device
        self.dtype = resolve_dtype(p.dtype, ctx.device)
        preset = None if p.pretrained else DIFFUSION_PRESETS[p.preset_name]
        if p.pretrained:
            self.pipeline = check_pipeline_dir(p.pretrained)  # before any weights load: a refusal is quick
            self.parts = self._load_pretrained(p.pretrained)
        else:
            self.pipeline = "StableDiffusionPipeline" if preset["denoiser"] == "unet" else "DiTPipeline"  # the loop it follows
            self.parts = self._build(preset)
        vae, denoiser = self.parts["vae"], self.parts["denoiser"]
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)  # diffusers' vae_scale_factor
        size = preset["default_size"] if preset else denoiser.config.sample_size * self.vae_factor  # the pipelines' default
        self.height, self.width = p.height or size, p.width or size
        multiple = self.vae_factor * (getattr(denoiser.config, "patch_size", None) or 1)  # transformers (DiT, PixArt) patchify the latent
        if self.height % multiple or self.width % multiple:
            raise ValueError(f"image size {self.height}x{self.width} is not divisible by {multiple} (VAE factor {self.vae_factor} x patch size)")
        self.latent_channels = vae.config.latent_channels
        self.latent_shape = (p.batch_size, self.latent_channels, self.height // self.vae_factor, self.width // self.vae_factor)
        self.cfg = p.guidance_scale > 1.0
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        self.noise = torch.randn(self.latent_shape, generator=gen).to(ctx.device, self.dtype)  # [B, C, H/f, W/f]
        self._make_condition_inputs(gen)
        self.parts["scheduler"].set_timesteps(p.steps, device=self.device)
        ctx.declare(**self._facts(preset))
        ctx.declare_state([StateLayer(kind="latent", bytes_per_token=0)])  # overwritten every step: constant across steps

    def _make_condition_inputs(self, gen: Any) -> None:
        """What the conditioning starts from: class labels (DiT), random prompt ids (presets: no
        tokenizer), or nothing but the pipeline's prompt; SDXL's add_time_ids depend on sizes only."""
        import torch

        p, denoiser = self.p, self.parts["denoiser"]
        self.text_tokens = None
        if self.parts.get("text_encoder") is None:  # class-conditional; num_embeds_ada_norm is the null class
            self.class_labels = torch.randint(0, denoiser.config.num_embeds_ada_norm, (p.batch_size,), generator=gen).to(self.device)
        elif self.pipe is None:
            self.text_tokens = TEXT_TOKENS
            vocab = self.parts["text_encoder"].config.vocab_size
            self.prompt_ids = torch.randint(0, vocab, (p.batch_size, TEXT_TOKENS), generator=gen).to(self.device)  # [B, 77]
            self.empty_ids = torch.zeros_like(self.prompt_ids)
        else:
            self.text_tokens = self._pipeline_text_tokens()
        self.add_time_ids = self._add_time_ids() if self.pipeline == "StableDiffusionXLPipeline" else None

    def _facts(self, preset: dict[str, Any] | None) -> dict[str, Any]:
        import torch

        p, denoiser, scheduler = self.p, self.parts["denoiser"], self.parts["scheduler"]
        modules = {name: m for name, m in self.parts.items() if m is not None and hasattr(m, "parameters")}
        counts = {name: parameter_facts(m)["param_count"] for name, m in modules.items()}
        dtype_bytes = torch.empty((), dtype=self.dtype).element_size()
        latent_elems = 1
        for d in self.latent_shape:
            latent_elems *= d
        return dict(
            pipeline=self.pipeline,
            denoiser=type(denoiser).__name__,
            text_encoders=[type(m).__name__ for name, m in modules.items() if name.startswith("text_encoder")],
            conditioning="class label" if self.parts.get("text_encoder") is None else "text",
            added_conditioning=self._added_conditioning(),
            text_tokens=self.text_tokens,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            dtype=str(self.dtype).removeprefix("torch."),
            param_count=sum(counts.values()),
            param_bytes=sum(parameter_facts(m)["param_bytes"] for m in modules.values()),
            param_count_by_part=counts,
            published_param_count_by_part=(preset or {}).get("published_params", {}),
            image_size=[self.height, self.width],
            latent_shape=list(self.latent_shape),
            denoiser_batch=p.batch_size * (2 if self.cfg else 1),
            classifier_free_guidance=self.cfg,
            steps=p.steps,
            denoise_steps_per_image=len(scheduler.timesteps),  # steps, or more for PNDM (+1) and second-order schedulers
            scheduler=type(scheduler).__name__,
            scheduler_source=self.scheduler_source,
            scheduler_config={k: scheduler.config[k] for k in SCHEDULER_FACTS if k in scheduler.config},
            state_kind="latent (overwritten every step; constant across steps)",
            state_formula="batch * latent_channels * (H / vae_factor) * (W / vae_factor) * dtype_bytes",
            state_bytes=latent_elems * dtype_bytes,
            per_step_sync=self.device.startswith("cuda"),
        )

    def _build(self, preset: dict[str, Any]) -> dict[str, Any]:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel, EulerDiscreteScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        with torch.device(self.device):
            if preset["denoiser"] == "unet":
                denoiser = UNet2DConditionModel(**preset["unet"])
            else:
                denoiser = DiTTransformer2DModel(**preset["dit"])
            vae = AutoencoderKL(**preset["vae"])
            text = CLIPTextModel(CLIPTextConfig(**preset["text"])) if preset["text"] else None
        parts = {"denoiser": denoiser, "vae": vae, "text_encoder": text}
        for m in parts.values():
            if m is not None:
                (m if self.dtype == torch.float32 else m.to(self.dtype)).eval()
        self.scheduler_source = "param" if self.p.scheduler else "preset default"
        parts["scheduler"] = (EulerDiscreteScheduler if self.p.scheduler == "euler" else DDIMScheduler)(**preset["betas"])
        return parts

    def _load_pretrained(self, path: str) -> dict[str, Any]:
        """diffusers' loader builds the pipeline the directory names, with the scheduler chosen here;
        optional components the loop never calls (safety checker, IP-adapter image encoder) stay out."""
        import inspect

        import diffusers

        cls = getattr(diffusers, self.pipeline)
        needed = PIPELINE_COMPONENTS[self.pipeline]
        kwargs: dict[str, Any] = {name: None for name in cls._optional_components if name not in needed}
        if "add_watermarker" in inspect.signature(cls.__init__).parameters:
            kwargs["add_watermarker"] = False  # SDXL: an invisible watermark on PIL images, after the delivery
        scheduler = self._pretrained_scheduler(path)
        try:
            self.pipe = cls.from_pretrained(path, scheduler=scheduler, dtype=self.dtype, local_files_only=True, **kwargs)
        except (OSError, ValueError, ImportError, TypeError, RuntimeError) as exc:  # a missing file or library, weights unlike the config
            reason = " ".join(str(exc).split())[:400] or type(exc).__name__
            raise ValueError(f"pretrained '{path}': diffusers could not load it as {self.pipeline}: {reason}") from exc
        self.pipe.to(self.device)
        pipe = self.pipe
        denoiser = pipe.unet if "unet" in needed else pipe.transformer
        parts = {"denoiser": denoiser, "vae": pipe.vae, "text_encoder": getattr(pipe, "text_encoder", None)}
        if "text_encoder_2" in needed:
            parts["text_encoder_2"] = pipe.text_encoder_2
        for m in parts.values():
            if m is not None:
                m.eval()
        parts["scheduler"] = pipe.scheduler
        return parts

    def _pretrained_scheduler(self, path: str) -> Any:
        """The directory's scheduler: the class its scheduler_config.json names, with that config.
        `scheduler:` swaps the class and keeps the config (betas, prediction type, spacing), the
        way diffusers' documentation swaps schedulers (`Other.from_config(pipe.scheduler.config)`)."""
        import diffusers
        from diffusers import SchedulerMixin

        name = _read_config(path, "scheduler", "scheduler_config.json").get("_class_name")
        cls = getattr(diffusers, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
            raise ValueError(f"pretrained '{path}': scheduler/scheduler_config.json names '{name}', which is not a diffusers scheduler")
        scheduler = cls.from_pretrained(path, subfolder="scheduler", local_files_only=True)
        if self.p.scheduler is None:
            self.scheduler_source = "directory"
            return scheduler
        self.scheduler_source = "param"
        return getattr(diffusers, SCHEDULER_OVERRIDES[self.p.scheduler]).from_config(scheduler.config)

    def _pipeline_text_tokens(self) -> int:
        """Tokens per prompt: the tokenizer's model_max_length for CLIP (77), the pipeline's own
        `max_sequence_length` default for PixArt's T5 (alpha 120, sigma 300)."""
        import inspect

        if self.pipeline.startswith("PixArt"):
            return int(inspect.signature(type(self.pipe).__call__).parameters["max_sequence_length"].default)
        return int(self.pipe.tokenizer.model_max_length)

    def _add_time_ids(self) -> Any:
        """SDXL's micro-conditioning: original size, crop top-left, target size (6 numbers per image),
        built by the pipeline's own `_get_add_time_ids`, which also checks that the UNet's added
        embedding takes addition_time_embed_dim * 6 + the projection dim of text_encoder_2."""
        size = (self.height, self.width)
        n = self.p.batch_size * (2 if self.cfg else 1)
        projection_dim = self.pipe.text_encoder_2.config.projection_dim
        try:
            ids = self.pipe._get_add_time_ids(size, (0, 0), size, dtype=self.dtype, text_encoder_projection_dim=projection_dim)  # [1, 6]
        except ValueError as exc:
            raise ValueError(f"pretrained '{self.p.pretrained}': StableDiffusionXLPipeline's added conditioning does not fit its UNet: {exc}") from exc
        return ids.to(self.device).repeat(n, 1)  # [2B or B, 6]

    def _added_conditioning(self) -> str | None:
        denoiser = self.parts["denoiser"]
        if getattr(denoiser, "use_additional_conditions", False):  # PixArt-alpha at 1024 px
            return "resolution, aspect_ratio"
        return getattr(denoiser.config, "addition_embed_type", None)

    # ------------------------------------------------------------------ one batch of images

    def run_once(self, mark: Mark) -> None:
        import torch

        with torch.inference_mode():
            condition = self._encode(mark)
            latents = self._denoise(mark, condition)
            with mark("vae_decode", units=self.p.batch_size, sequences=self.p.batch_size):
                images = self._decode(latents)  # [B, 3, H, W]
                images.cpu()  # the images reach the host: time-to-image ends here

    def _encode(self, mark: Mark) -> dict[str, Any]:
        """The denoiser's conditioning keywords, unconditional half first (as the pipelines)."""
        import torch

        if self.parts["text_encoder"] is None:  # class-conditional (DiT): the null class is the unconditional input
            labels = self.class_labels
            null = torch.full_like(labels, self.parts["denoiser"].config.num_embeds_ada_norm)
            return {"class_labels": torch.cat([null, labels]) if self.cfg else labels}  # [2B or B]
        with mark("text_encode"):
            condition = self._encode_preset() if self.pipe is None else self._encode_pipeline()
            self._sync()
        return condition

    def _encode_preset(self) -> dict[str, Any]:
        import torch

        ids = torch.cat([self.empty_ids, self.prompt_ids]) if self.cfg else self.prompt_ids  # [2B or B, 77]
        return {"encoder_hidden_states": self.parts["text_encoder"](ids).last_hidden_state}  # [2B or B, 77, D]

    def _encode_pipeline(self) -> dict[str, Any]:
        """The pipeline's own `encode_prompt`: tokenizers, every text encoder, the negative prompt."""
        import torch

        pipe, cfg, device = self.pipe, self.cfg, self.device
        prompts = [PROMPT] * self.p.batch_size

        def both(negative: Any, positive: Any) -> Any:
            return torch.cat([negative, positive]) if cfg else positive

        if self.pipeline == "StableDiffusionPipeline":
            text, negative = pipe.encode_prompt(prompts, device, 1, cfg)  # [B, 77, D] each
            return {"encoder_hidden_states": both(negative, text)}
        if self.pipeline == "StableDiffusionXLPipeline":
            # hidden states of both encoders concatenated [B, 77, D1 + D2]; pooled from text_encoder_2 [B, P]
            text, negative, pooled, negative_pooled = pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg)
            added = {"text_embeds": both(negative_pooled, pooled), "time_ids": self.add_time_ids}
            return {"encoder_hidden_states": both(negative, text), "added_cond_kwargs": added}
        # PixArt: T5 hidden states [B, L, D] and their attention masks [B, L]
        text, mask, negative, negative_mask = pipe.encode_prompt(
            prompts, cfg, negative_prompt="", device=device, clean_caption=False, max_sequence_length=self.text_tokens
        )
        return {
            "encoder_hidden_states": both(negative, text),
            "encoder_attention_mask": both(negative_mask, mask),
            "added_cond_kwargs": self._pixart_micro_conditions(),
        }

    def _pixart_micro_conditions(self) -> dict[str, Any]:
        """PixArt-alpha 1024's resolution and aspect-ratio embeddings (pipeline_pixart_alpha.py, 6.1)."""
        import torch

        if not self.parts["denoiser"].use_additional_conditions:
            return {"resolution": None, "aspect_ratio": None}
        n = self.p.batch_size * (2 if self.cfg else 1)
        resolution = torch.tensor([self.height, self.width], dtype=self.dtype, device=self.device).repeat(n, 1)  # [2B or B, 2]
        aspect_ratio = torch.tensor([self.height / self.width], dtype=self.dtype, device=self.device).repeat(n, 1)  # [2B or B, 1]
        return {"resolution": resolution, "aspect_ratio": aspect_ratio}

    def _denoise(self, mark: Mark, condition: dict[str, Any]) -> Any:
        import torch

        scheduler, denoiser = self.parts["scheduler"], self.parts["denoiser"]
        scheduler.set_timesteps(self.p.steps, device=self.device)
        latents = self.noise * scheduler.init_noise_sigma  # [B, C, h, w]
        for i, t in enumerate(scheduler.timesteps):
            with mark("denoise_step", sequences=self.p.batch_size, position=i + 1) as span:
                x = torch.cat([latents] * 2) if self.cfg else latents  # [2B, C, h, w] with guidance
                x = scheduler.scale_model_input(x, t)
                out = denoiser(x, timestep=t.expand(x.shape[0]), **condition).sample  # [2B or B, C or 2C, h, w]
                eps = out[:, : self.latent_channels]  # learned sigma (DiT, PixArt): the first C channels are the prediction
                if self.cfg:
                    uncond, cond = eps.chunk(2)  # [B, C, h, w] each
                    eps = uncond + self.p.guidance_scale * (cond - uncond)
                latents = scheduler.step(eps, t, latents).prev_sample
                self._sync()
            span.attrs["state_bytes"] = latents.numel() * latents.element_size()
        return latents

    def _decode(self, latents: Any) -> Any:
        """Undo the VAE's latent scaling (and SDXL-style latents_mean/std when the VAE has them), then decode."""
        import torch

        config = self.parts["vae"].config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is not None and std is not None:
            shape = (1, self.latent_channels, 1, 1)
            mean = torch.tensor(mean).view(shape).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(shape).to(latents.device, latents.dtype)
            latents = latents * std / config.scaling_factor + mean
        else:
            latents = latents / config.scaling_factor
        return self.parts["vae"].decode(latents).sample  # [B, 3, H, W]

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def teardown(self) -> None:
        self.parts = {}
        self.pipe = None


def check_pipeline_dir(path: str) -> str:
    """The pipeline class a directory's model_index.json names, when this workload can run it.

    Read from the JSON files alone, before any weights load; anything else is a ValueError of one
    line naming the class or the missing component and why.
    """
    with open(os.path.join(path, "model_index.json")) as f:
        index = json.load(f)
    where = f"pretrained '{path}'"
    name = index.get("_class_name")
    if name is None:
        raise ValueError(f"{where}: model_index.json has no _class_name, so the pipeline it holds is unknown")
    if name not in PIPELINE_COMPONENTS:
        raise ValueError(
            f"{where}: model_index.json names {name}, {pipeline_kind(name)}; the diffusion workload runs the text-to-image "
            f"pipelines {', '.join(PIPELINE_COMPONENTS)}"
        )
    for component in PIPELINE_COMPONENTS[name]:
        entry = index.get(component)
        if not (isinstance(entry, list) and entry and entry[0]) or not os.path.isdir(os.path.join(path, component)):
            raise ValueError(f"{where}: {name} needs the component '{component}' (a model_index.json entry and a {component}/ folder), which is missing")
    denoiser = "unet" if "unet" in PIPELINE_COMPONENTS[name] else "transformer"
    config, vae = _read_config(path, denoiser), _read_config(path, "vae")
    channels, latent = config.get("in_channels"), vae.get("latent_channels", 4)
    if channels != latent:
        raise ValueError(
            f"{where}: {name}'s {denoiser} takes {channels} input channels but the VAE's latent has {latent}: "
            "an inpainting or depth-conditioned denoiser, not text-to-image"
        )
    added = config.get("addition_embed_type")
    if name == "StableDiffusionXLPipeline" and added != "text_time":
        raise ValueError(
            f"{where}: StableDiffusionXLPipeline needs a UNet with addition_embed_type 'text_time' (pooled text + add_time_ids); this one has {added}"
        )
    if name == "StableDiffusionPipeline" and added is not None:
        raise ValueError(f"{where}: StableDiffusionPipeline cannot give its UNet the added conditioning '{added}' it expects (an SDXL-style UNet)")
    return name


def _read_config(path: str, component: str, file: str = "config.json") -> dict[str, Any]:
    """A component's config: config.json for models, scheduler_config.json for a scheduler."""
    with open(os.path.join(path, component, file)) as f:
        return json.load(f)


def pipeline_kind(name: str) -> str:
    """What kind of pipeline a class name is, from diffusers' AutoPipeline task tables."""
    from diffusers.pipelines import auto_pipeline

    tables = {
        "an image-to-image": "AUTO_IMAGE2IMAGE_PIPELINES_MAPPING",
        "an inpainting": "AUTO_INPAINT_PIPELINES_MAPPING",
        "a text-to-video": "AUTO_TEXT2VIDEO_PIPELINES_MAPPING",
        "an image-to-video": "AUTO_IMAGE2VIDEO_PIPELINES_MAPPING",
        "a video-to-video": "AUTO_VIDEO2VIDEO_PIPELINES_MAPPING",
        "a text-to-audio": "AUTO_TEXT2AUDIO_PIPELINES_MAPPING",
        "a text-to-image": "AUTO_TEXT2IMAGE_PIPELINES_MAPPING",  # last: some classes are in several tables
    }
    for kind, table in tables.items():
        if any(getattr(cls, "__name__", None) == name for cls in getattr(auto_pipeline, table, {}).values()):
            family = " of a family whose denoiser and conditioning this workload does not build" if "text-to-image" in kind else ""
            return f"{kind} pipeline{family}"
    return "not a text-to-image pipeline diffusers' AutoPipeline knows"
