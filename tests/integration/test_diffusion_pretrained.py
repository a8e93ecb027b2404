"""`pretrained:` diffusion pipeline directories of every family the workload runs (SD 1.x, SD 2.x,
SDXL, DiT, PixArt-alpha and -sigma) run with their own scheduler and conditioning; others are
refused in setup with one line.

Each directory is built here from the published config.json values of a real checkpoint, shrunk
in depth and width but keeping what makes the family (SDXL's two text encoders and text_time
conditioning, SD 2.x's v-prediction and linear projection, PixArt's T5 and caption projection),
with random weights and tokenizers built from a small local vocabulary, then saved with
save_pretrained: nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil

import pytest

from profiler.measure.spans import SpanRecorder
from profiler.measure.store import SPANS, PartWriter, merge_parts
from profiler.run.child import SetupContextImpl
from workloads.diffusion import Diffusion

WORDS = ("a", "photograph", "of", "an", "astronaut", "riding", "horse")  # the workload's prompt
TINY_VAE = {  # stable-diffusion-v1-5 vae/config.json: 4 blocks (8x downsampling), 4 latent channels; narrow
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (8, 8, 16, 16),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}
SIDE = 64  # image side in pixels: sample_size 8 latents x VAE factor 8


def clip_tokenizer():
    """A CLIP BPE tokenizer over the prompt's words (CLIP ids: <|startoftext|> 0, <|endoftext|> 1)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1} | {f"{w}</w>": i + 2 for i, w in enumerate(WORDS)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    """A T5 unigram tokenizer over the prompt's words (<pad> 0, </s> 1, <unk> 2, as T5's spiece)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)] + [(f"▁{w}", -1.0) for w in WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def clip_text(hidden, layers, heads, projection_dim, act, with_projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection_dim,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def vae(**changes):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(TINY_VAE | changes))


def sd15(path):
    """stable-diffusion-v1-5: UNet with CrossAttn blocks, CLIP ViT-L text encoder (quick_gelu),
    PNDMScheduler scaled_linear 0.00085..0.012, skip_prk_steps."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    text = clip_text(32, 2, 2, 32, "quick_gelu")
    pipe = StableDiffusionPipeline(vae(), text, clip_tokenizer(), unet, scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)


def sd21(path):
    """stable-diffusion-2-1: attention_head_dim per block, use_linear_projection, upcast_attention,
    OpenCLIP-H text encoder (gelu, projection 512 != hidden 1024), v-prediction. The scheduler is a
    DPMSolverMultistep with v-prediction (the directory's, not DPMSolver's default epsilon)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        upcast_attention=True,
    )
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction", steps_offset=1, solver_order=2
    )
    text = clip_text(64, 2, 4, 32, "gelu")
    pipe = StableDiffusionPipeline(vae(), text, clip_tokenizer(), unet, scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)


# SDXL base: text_encoder CLIP-L (768, quick_gelu), text_encoder_2 OpenCLIP-bigG with projection (1280,
# gelu, projection_dim 1280); cross_attention_dim 2048 = 768 + 1280; addition_time_embed_dim 256;
# projection_class_embeddings_input_dim 2816 = 1280 + 6 * 256. Here: 32 + 64 = 96, 48 + 6 * 8 = 96.
SDXL_PROJECTION, SDXL_TIME_DIM = 48, 8


def sdxl(path):
    """stable-diffusion-xl-base-1.0, shrunk: no attention in the first block, transformer_layers_per_block
    growing with depth, linear projection, text_time added conditioning. EulerAncestral with SDXL's
    scaled_linear betas and trailing spacing (EulerAncestral's default is linear 0.0001..0.02, leading)."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        cross_attention_dim=32 + 64,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=SDXL_TIME_DIM,
        projection_class_embeddings_input_dim=SDXL_PROJECTION + 6 * SDXL_TIME_DIM,
    )
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1)
    text = clip_text(32, 2, 2, 32, "quick_gelu")
    text_2 = clip_text(64, 2, 4, SDXL_PROJECTION, "gelu", with_projection=True)
    pipe = StableDiffusionXLPipeline(vae(scaling_factor=0.13025), text, text_2, clip_tokenizer(), clip_tokenizer(), unet, scheduler, add_watermarker=False)
    pipe.save_pretrained(path)


def dit(path):
    """DiT-XL-2-256: ada_norm_zero blocks, learned sigma (out_channels 8 = 2 x 4), patch 2, 1000
    classes. Scheduler: DPMSolverMultistep order 3 on DiT's linear betas (its default order is 2)."""
    from diffusers import DiTPipeline, DiTTransformer2DModel, DPMSolverMultistepScheduler

    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,
        activation_fn="gelu-approximate",
        norm_type="ada_norm_zero",
    )
    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", solver_order=3)
    DiTPipeline(transformer, vae(), scheduler, id2label={0: "tench, Tinca tinca"}).save_pretrained(path)


def pixart(path, sigma=False):
    """PixArt-XL-2-1024-MS (alpha) / PixArt-Sigma-XL-2-1024-MS: T5 v1.1 encoder (gated-gelu, 32
    relative-attention buckets), caption projection from the T5 width (caption_channels) to the
    transformer's, ada_norm_single, learned sigma. Alpha at 1024 px embeds resolution and aspect
    ratio (use_additional_conditions, on here at a tiny size); sigma does not. Scheduler:
    DPMSolverMultistep dpmsolver++ on linear betas (the published directory's)."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtSigmaPipeline, PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    t5 = T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        is_encoder_decoder=False,
    )
    transformer = PixArtTransformer2DModel(  # width 48 = 2 x 24: divisible by 3, as 1152 (resolution, aspect ratio, timestep thirds)
        num_attention_heads=2,
        attention_head_dim=24,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=48,
        caption_channels=t5.d_model,
        sample_size=8,
        patch_size=2,
        norm_type="ada_norm_single",
        norm_eps=1e-6,
        use_additional_conditions=not sigma,
        interpolation_scale=2 if sigma else None,
    )
    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2)
    cls = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
    cls(t5_tokenizer(), T5EncoderModel(t5), vae(scaling_factor=0.13025 if sigma else 0.18215), transformer, scheduler).save_pretrained(path)


BUILDERS = {"sd15": sd15, "sd21": sd21, "sdxl": sdxl, "dit": dit, "pixart-alpha": pixart, "pixart-sigma": lambda p: pixart(p, sigma=True)}


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Tiny shapes gain nothing from threads, and OpenMP threads spinning against other busy
    processes on a 2-core machine made single steps take seconds (as in test_vla.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def directories(tmp_path_factory):
    """Each family's directory, built once (a few hundred ms each)."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("pipelines")
    built = {}
    for name, build in BUILDERS.items():
        build(root / name)
        built[name] = root / name
    return built


def run(tmp_path, hook=None, **params):
    """setup, then one iteration with a real SpanRecorder; `hook(workload)` runs between them.
    Returns the spans, the facts and the scheduler the iteration used."""
    import pandas as pd

    workload = Diffusion(Diffusion.Params(**params))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    recorder = SpanRecorder(PartWriter(tmp_path, SPANS))
    try:
        if hook:
            hook(workload)
        scheduler = workload.parts["scheduler"]
        recorder.run_iteration(workload, 0, warmup=False)
    finally:
        workload.teardown()
    recorder.flush()
    merge_parts(tmp_path, SPANS)
    return pd.read_parquet(tmp_path / "spans.parquet"), ctx.facts, scheduler


FAMILIES = [
    # directory, pipeline, scheduler param, scheduler class used, config values it must carry, text encoders
    ("sd15", "StableDiffusionPipeline", "euler", "EulerDiscreteScheduler", {"beta_end": 0.012, "beta_schedule": "scaled_linear"}, ["CLIPTextModel"]),
    ("sd21", "StableDiffusionPipeline", None, "DPMSolverMultistepScheduler", {"prediction_type": "v_prediction", "beta_end": 0.012}, ["CLIPTextModel"]),
    (
        "sdxl",
        "StableDiffusionXLPipeline",
        None,
        "EulerAncestralDiscreteScheduler",
        {"beta_schedule": "scaled_linear", "timestep_spacing": "trailing"},
        ["CLIPTextModel", "CLIPTextModelWithProjection"],
    ),
    ("dit", "DiTPipeline", None, "DPMSolverMultistepScheduler", {"solver_order": 3, "beta_schedule": "linear"}, []),
    ("pixart-alpha", "PixArtAlphaPipeline", None, "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "beta_end": 0.02}, ["T5EncoderModel"]),
    ("pixart-sigma", "PixArtSigmaPipeline", "ddim", "DDIMScheduler", {"beta_schedule": "linear", "beta_start": 0.0001}, ["T5EncoderModel"]),
]


@pytest.mark.parametrize("name, pipeline, override, scheduler_class, config, encoders", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_runs_with_its_scheduler_and_conditioning(tmp_path, directories, name, pipeline, override, scheduler_class, config, encoders):
    batch, steps = 2, 2
    spans, facts, scheduler = run(tmp_path, pretrained=str(directories[name]), batch_size=batch, steps=steps, guidance_scale=5.0, scheduler=override)
    assert facts["pipeline"] == pipeline
    assert facts["text_encoders"] == encoders
    assert type(scheduler).__name__ == facts["scheduler"] == scheduler_class
    assert facts["scheduler_source"] == ("param" if override else "directory")
    assert {k: scheduler.config[k] for k in config} == config
    phases = [p for p in spans.sort_values("start_ns")["phase"] if p != "iteration"]
    assert phases == (["text_encode"] if encoders else []) + ["denoise_step"] * steps + ["vae_decode"]
    denoise = spans[spans["phase"] == "denoise_step"]
    assert list(denoise["position"]) == list(range(1, steps + 1))
    assert (denoise["sequences"] == batch).all()
    assert (denoise["state_bytes"] == batch * 4 * (SIDE // 8) * (SIDE // 8) * 4).all()  # B x latent_channels x (H/8) x (W/8) x float32
    assert facts["state_bytes"] == batch * 4 * (SIDE // 8) ** 2 * 4
    decode = spans[spans["phase"] == "vae_decode"]
    assert decode["units"].item() == batch and decode["sequences"].item() == batch
    assert facts["image_size"] == [SIDE, SIDE]  # the denoiser's sample_size x the VAE factor, as the pipelines default


def test_directory_scheduler_class_and_config_without_override(tmp_path, directories):
    """SD 1.5's PNDM (skip_prk_steps: one more timestep than steps, as its pipeline runs it)."""
    from diffusers import PNDMScheduler

    workload = Diffusion(Diffusion.Params(pretrained=str(directories["sd15"]), steps=3))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    scheduler = workload.parts["scheduler"]
    workload.teardown()
    assert isinstance(scheduler, PNDMScheduler) and ctx.facts["scheduler_source"] == "directory"
    assert scheduler.config.skip_prk_steps and scheduler.config.beta_start == 0.00085
    assert ctx.facts["denoise_steps_per_image"] == 4


def test_sdxl_unet_receives_pooled_text_and_time_ids(tmp_path, directories):
    """The crash this replaces: SDXL's UNet was called without added_cond_kwargs."""
    seen = []

    def capture(module, args, kwargs):
        added = kwargs["added_cond_kwargs"]
        seen.append({k: tuple(v.shape) for k, v in added.items()} | {"time_ids_row": added["time_ids"][0].tolist()})

    def hook(workload):
        workload.parts["denoiser"].register_forward_pre_hook(capture, with_kwargs=True)

    batch = 2
    _, facts, _ = run(tmp_path, hook, pretrained=str(directories["sdxl"]), batch_size=batch, steps=1, guidance_scale=5.0, height=48, width=64)
    assert facts["added_conditioning"] == "text_time"
    assert seen == [{"text_embeds": (2 * batch, SDXL_PROJECTION), "time_ids": (2 * batch, 6), "time_ids_row": [48.0, 64.0, 0.0, 0.0, 48.0, 64.0]}]
    assert facts["latent_shape"] == [batch, 4, 48 // 8, 64 // 8]


def test_pixart_alpha_gets_t5_mask_and_micro_conditions(tmp_path, directories):
    seen = []

    def hook(workload):
        def capture(module, args, kwargs):
            seen.append(
                (
                    tuple(kwargs["encoder_hidden_states"].shape),
                    tuple(kwargs["encoder_attention_mask"].shape),
                    kwargs["added_cond_kwargs"]["resolution"].tolist(),
                )
            )

        workload.parts["denoiser"].register_forward_pre_hook(capture, with_kwargs=True)

    _, facts, _ = run(tmp_path, hook, pretrained=str(directories["pixart-alpha"]), batch_size=1, steps=1, guidance_scale=4.5)
    assert facts["text_tokens"] == 120  # PixArtAlphaPipeline's max_sequence_length (sigma: 300)
    assert facts["added_conditioning"] == "resolution, aspect_ratio"
    assert seen == [((2, 120, 32), (2, 120), [[64.0, 64.0], [64.0, 64.0]])]


def edited_copy(src, dst, **index_changes):
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    (dst / "model_index.json").write_text(json.dumps(index | index_changes))
    return dst


@pytest.mark.parametrize(
    "source, change, needle",
    [
        ("sd15", {"_class_name": "StableDiffusionImg2ImgPipeline"}, "names StableDiffusionImg2ImgPipeline, an image-to-image pipeline;"),
        ("sd15", {"_class_name": "WanPipeline"}, "names WanPipeline, a text-to-video pipeline;"),
        (
            "sd15",
            {"_class_name": "StableDiffusion3Pipeline"},
            "a text-to-image pipeline of a family whose denoiser and conditioning this workload does not build",
        ),
        ("sdxl", "text_encoder_2", "StableDiffusionXLPipeline needs the component 'text_encoder_2'"),
        ("sdxl", {"_class_name": "StableDiffusionPipeline"}, "cannot give its UNet the added conditioning 'text_time'"),
    ],
)
def test_unsupported_directory_is_refused_in_setup_with_one_line(tmp_path, directories, source, change, needle):
    path = edited_copy(directories[source], tmp_path / "pipe", **(change if isinstance(change, dict) else {}))
    if isinstance(change, str):
        shutil.rmtree(path / change)
    workload = Diffusion(Diffusion.Params(pretrained=str(path), steps=1))
    with pytest.raises(ValueError) as refused:
        workload.setup(SetupContextImpl("cpu", 0, str(tmp_path)))
    message = str(refused.value)
    assert needle in message and "\n" not in message and str(path) in message
