"""Diffusion: the latent is the state (constant across steps), guidance doubles the denoiser batch,
and the published SD1.5 shapes build the published parameter counts."""

from __future__ import annotations

import pytest

from tests.conftest import assert_bad_params
from tests.integration.test_llm_decode import run_with_recorder
from workloads.diffusion import Diffusion


@pytest.mark.parametrize("preset, guidance, text", [("sd-tiny", 7.5, True), ("dit-tiny", 4.0, False), ("sd-tiny", 1.0, True)])
def test_phases_and_constant_latent_state(tmp_path, preset, guidance, text):
    batch, steps = 2, 4
    spans, facts = run_with_recorder(tmp_path, Diffusion(Diffusion.Params(preset=preset, batch_size=batch, steps=steps, guidance_scale=guidance)))
    phases = [p for p in spans.sort_values("start_ns")["phase"] if p != "iteration"]
    assert phases == (["text_encode"] if text else []) + ["denoise_step"] * steps + ["vae_decode"]
    denoise = spans[spans["phase"] == "denoise_step"]
    assert list(denoise["position"]) == list(range(1, steps + 1))
    side = {"sd-tiny": 128, "dit-tiny": 64}[preset] // 8
    assert (denoise["state_bytes"] == batch * 4 * side * side * 4).all()  # B x 4 x (H/8) x (W/8) x float32
    assert facts["denoiser_batch"] == batch * (2 if guidance > 1 else 1)
    assert spans.loc[spans["phase"] == "vae_decode", "units"].item() == batch
    assert (facts["scheduler"], facts["scheduler_source"]) == ("DDIMScheduler", "preset default")  # no `scheduler:` param


def test_scheduler_param_overrides_the_preset_default(tmp_path):
    _, facts = run_with_recorder(tmp_path, Diffusion(Diffusion.Params(preset="dit-tiny", steps=2, scheduler="euler")))
    assert (facts["scheduler"], facts["scheduler_source"]) == ("EulerDiscreteScheduler", "param")
    assert facts["scheduler_config"]["beta_schedule"] == "linear"  # the preset's betas


def test_sd15_and_dit_shapes_build_published_counts():
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from workloads.diffusion_presets import DIFFUSION_PRESETS

    sd = DIFFUSION_PRESETS["sd15"]
    with torch.device("meta"):
        counts = {
            "denoiser": UNet2DConditionModel(**sd["unet"]),
            "vae": AutoencoderKL(**sd["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**sd["text"])),
        }
    built = {k: sum(p.numel() for p in m.parameters()) for k, m in counts.items()}
    assert built == sd["published_params"]


@pytest.mark.parametrize(
    "params, needle",
    [
        ("{height: 100}", "height 100 is not divisible by 16"),
        ("{steps: 0}", "steps"),
        ("{guidance_scale: 0.5}", "guidance_scale"),
        ("{preset: sd-15}", "did you mean 'sd15'"),
        ("{scheduler: pndm}", "scheduler: Input should be 'ddim' or 'euler'"),
    ],
)
def test_bad_diffusion_params(write_suite, params, needle):
    assert_bad_params(write_suite, "diffusion", params, needle)
