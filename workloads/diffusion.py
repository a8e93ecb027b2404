"""`diffusion`: text-to-image (UNet, Stable Diffusion 1.5 shape) or class-to-image (DiT-XL/2).

Built from diffusers and transformers parts with published shapes and random weights (or a
local diffusers pipeline directory). One iteration is one batch of images, run as the pipelines
run it, with each phase marked:
- `text_encode`: the CLIP text encoder over the prompt (and the empty prompt, for guidance);
- `denoise_step`: one per scheduler step (DDIM or Euler). With classifier-free guidance
  (guidance_scale > 1) the denoiser batch is twice the image batch (`torch.cat([latents] * 2)`,
  as in diffusers' pipelines). On CUDA each step ends with a synchronize, so the host span is
  the step's real duration (a pipeline's progress callback waits the same way);
- `vae_decode`: AutoencoderKL decodes the latent; the images reach the host (the delivery).
The state is the latent, overwritten every step: constant across steps, measured each step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from profiler.plugin import Declaration, Mark, SetupContext, Trait
from profiler.plugin import Params as BaseParams

from .decode_loop import parameter_facts, resolve_dtype
from .diffusion_presets import DIFFUSION_PRESETS
from .params import DTYPE_HELP, DTypeName, check_one_source, check_pretrained_dir

TEXT_TOKENS = 77  # CLIP's context length, what SD pipelines pad every prompt to


class Diffusion:
    """Diffusion image generation: text encode, N denoise steps (CFG doubles the batch), VAE decode."""

    class Params(BaseParams):
        preset: Literal[tuple(DIFFUSION_PRESETS)] | None = Field(  # type: ignore[valid-type]
            None, description=f"Published architecture, random weights: {', '.join(DIFFUSION_PRESETS)}. Default sd-tiny unless `pretrained` is set."
        )
        pretrained: str | None = Field(None, description="Local diffusers pipeline directory (model_index.json); local files only.")
        batch_size: int = Field(1, ge=1, le=1024, description="Images generated together.")
        height: int | None = Field(None, ge=8, le=8192, description="Image height in pixels; default: the preset's native size.")
        width: int | None = Field(None, ge=8, le=8192, description="Image width in pixels; default: the preset's native size.")
        steps: int = Field(20, ge=1, le=10_000, description="Denoising steps (diffusers defaults to 50; MLPerf SDXL uses 20).")
        guidance_scale: float = Field(7.5, ge=1.0, le=100.0, description="Classifier-free guidance; > 1 doubles the denoiser batch.")
        scheduler: Literal["ddim", "euler"] = Field("ddim", description="DDIMScheduler or EulerDiscreteScheduler.")
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

    # ------------------------------------------------------------------ setup

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        self.device = ctx.device
        self.dtype = resolve_dtype(p.dtype, ctx.device)
        preset = None if p.pretrained else DIFFUSION_PRESETS[p.preset_name]
        self.parts = self._load_pretrained(p.pretrained) if p.pretrained else self._build(preset)
        vae = self.parts["vae"]
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        size = preset["default_size"] if preset else vae.config.sample_size
        self.height, self.width = p.height or size, p.width or size
        if self.height % self.vae_factor or self.width % self.vae_factor:
            raise ValueError(f"image size {self.height}x{self.width} is not divisible by the VAE factor {self.vae_factor}")
        self.latent_shape = (p.batch_size, vae.config.latent_channels, self.height // self.vae_factor, self.width // self.vae_factor)
        self.cfg = p.guidance_scale > 1.0
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        self.noise = torch.randn(self.latent_shape, generator=gen).to(ctx.device, self.dtype)  # [B, 4, H/8, W/8]
        if self.parts.get("text_encoder") is not None:
            vocab = self.parts["text_encoder"].config.vocab_size
            self.prompt_ids = torch.randint(0, vocab, (p.batch_size, TEXT_TOKENS), generator=gen).to(ctx.device)
            self.empty_ids = torch.zeros_like(self.prompt_ids)
        else:
            self.class_labels = torch.randint(0, 1000, (p.batch_size,), generator=gen).to(ctx.device)
        dtype_bytes = torch.empty((), dtype=self.dtype).element_size()
        latent_elems = 1
        for d in self.latent_shape:
            latent_elems *= d
        counts = {name: parameter_facts(m)["param_count"] for name, m in self.parts.items() if hasattr(m, "parameters") and m is not None}
        ctx.declare(
            denoiser=type(self.parts["denoiser"]).__name__,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            dtype=str(self.dtype).removeprefix("torch."),
            param_count=sum(counts.values()),
            param_bytes=sum(parameter_facts(m)["param_bytes"] for m in self.parts.values() if hasattr(m, "parameters")),
            param_count_by_part=counts,
            published_param_count_by_part=(preset or {}).get("published_params", {}),
            image_size=[self.height, self.width],
            latent_shape=list(self.latent_shape),
            denoiser_batch=p.batch_size * (2 if self.cfg else 1),
            classifier_free_guidance=self.cfg,
            steps=p.steps,
            scheduler=type(self.parts["scheduler"]).__name__,
            state_kind="latent (overwritten every step; constant across steps)",
            state_formula="batch * latent_channels * (H / vae_factor) * (W / vae_factor) * dtype_bytes",
            state_bytes=latent_elems * dtype_bytes,
            per_step_sync=ctx.device.startswith("cuda"),
        )

    def _build(self, preset: dict[str, Any]) -> dict[str, Any]:
        import torch
        from diffusers import AutoencoderKL, DiTTransformer2DModel, UNet2DConditionModel
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
        parts["scheduler"] = self._scheduler(preset["betas"])
        return parts

    def _scheduler(self, betas: dict[str, Any]) -> Any:
        from diffusers import DDIMScheduler, EulerDiscreteScheduler

        return (DDIMScheduler if self.p.scheduler == "ddim" else EulerDiscreteScheduler)(**betas)

    def _load_pretrained(self, path: str) -> dict[str, Any]:
        import os

        from diffusers import AutoencoderKL, DiTTransformer2DModel, UNet2DConditionModel
        from transformers import CLIPTextModel

        kw = {"local_files_only": True, "torch_dtype": self.dtype}
        if os.path.isdir(os.path.join(path, "unet")):
            denoiser = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kw)
        else:
            denoiser = DiTTransformer2DModel.from_pretrained(path, subfolder="transformer", **kw)
        text = (
            CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=self.dtype, local_files_only=True)
            if os.path.isdir(os.path.join(path, "text_encoder"))
            else None
        )
        parts = {"denoiser": denoiser, "vae": AutoencoderKL.from_pretrained(path, subfolder="vae", **kw), "text_encoder": text}
        for m in parts.values():
            if m is not None:
                m.to(self.device).eval()
        parts["scheduler"] = self._scheduler({"num_train_timesteps": 1000})
        return parts

    # ------------------------------------------------------------------ one batch of images

    def run_once(self, mark: Mark) -> None:
        import torch

        with torch.inference_mode():
            context = self._encode(mark)
            latents = self._denoise(mark, context)
            with mark("vae_decode", units=self.p.batch_size):
                vae = self.parts["vae"]
                images = vae.decode(latents / vae.config.scaling_factor).sample  # [B, 3, H, W]
                images.cpu()  # the images reach the host: time-to-image ends here

    def _encode(self, mark: Mark) -> Any:
        import torch

        text = self.parts["text_encoder"]
        if text is None:  # class-conditional (DiT): the null class 1000 is the unconditional input
            labels = self.class_labels
            return torch.cat([labels, torch.full_like(labels, 1000)]) if self.cfg else labels
        with mark("text_encode"):
            ids = torch.cat([self.prompt_ids, self.empty_ids]) if self.cfg else self.prompt_ids
            context = text(ids).last_hidden_state  # [B or 2B, 77, D]
            self._sync()
        return context

    def _denoise(self, mark: Mark, context: Any) -> Any:
        import torch

        scheduler, denoiser = self.parts["scheduler"], self.parts["denoiser"]
        scheduler.set_timesteps(self.p.steps, device=self.device)
        latents = self.noise * scheduler.init_noise_sigma
        unet = self.parts["text_encoder"] is not None
        for i, t in enumerate(scheduler.timesteps):
            with mark("denoise_step", position=i + 1) as span:
                x = torch.cat([latents] * 2) if self.cfg else latents  # [2B, 4, h, w] with guidance
                x = scheduler.scale_model_input(x, t)
                if unet:
                    eps = denoiser(x, t, encoder_hidden_states=context).sample
                else:
                    timestep = t.expand(x.shape[0]).to(self.device)
                    eps = denoiser(x, timestep=timestep, class_labels=context).sample
                    eps = eps[:, : latents.shape[1]]  # learned sigma: the first channels are the noise
                if self.cfg:
                    uncond, cond = eps.chunk(2)
                    eps = uncond + self.p.guidance_scale * (cond - uncond)
                latents = scheduler.step(eps, t, latents).prev_sample
                self._sync()
            span.attrs["state_bytes"] = latents.numel() * latents.element_size()
        return latents

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def teardown(self) -> None:
        self.parts = {}
