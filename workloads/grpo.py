"""The arithmetic of one GRPO step, kept apart from the timing so it can be checked on exact values.

GRPO (DeepSeekMath, Shao et al. 2024, section 4.1, eq. 3): for each prompt, G sampled responses
with rewards r_1..r_G; each response's advantage is its group-normalised reward
A_i = (r_i - mean(r)) / (std(r) + eps), the same for every token of the response. The loss per
token t of response i is

    -[ min(rho * A_i, clip(rho, 1 - clip_eps, 1 + clip_eps) * A_i) - beta * KL_t ],
    rho = exp(logp_new - logp_old),  KL_t = exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1

(the k3 estimator of KL(new || ref), unbiased and positive), averaged over the response's tokens,
then over all responses. DeepSeekMath uses clip_eps 0.2 and beta 0.04.

Shapes: B sequences, T = longest prompt + response in the micro-batch (right-padded), R = longest
response; log-probabilities are float32 [B, R], masked where a response is shorter.
"""

from __future__ import annotations

from typing import Any

ADV_EPS = 1e-4


def group_advantages(rewards: Any, eps: float = ADV_EPS) -> Any:
    """[P, G] rewards -> [P, G] advantages (r - mean) / (std + eps) per group (std with Bessel's
    correction, as torch.std; a group of one has advantage 0)."""
    import torch

    if rewards.shape[1] == 1:
        return torch.zeros_like(rewards)
    return (rewards - rewards.mean(dim=1, keepdim=True)) / (rewards.std(dim=1, keepdim=True) + eps)


def pack(prompts: list[list[int]], responses: list[list[int]], device: str) -> tuple[Any, Any, Any, list[int]]:
    """Right-padded [B, T] input ids and attention mask, the [B, R] response mask, and each prompt's length."""
    import torch

    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    t, r = max(lengths), max(len(x) for x in responses)
    ids = torch.zeros(len(prompts), t, dtype=torch.long)
    attention = torch.zeros(len(prompts), t, dtype=torch.long)
    response_mask = torch.zeros(len(prompts), r, dtype=torch.float32)
    for i, (p, x) in enumerate(zip(prompts, responses, strict=True)):
        ids[i, : len(p) + len(x)] = torch.tensor(p + x)
        attention[i, : len(p) + len(x)] = 1
        response_mask[i, : len(x)] = 1
    return ids.to(device), attention.to(device), response_mask.to(device), [len(p) for p in prompts]


def response_logprobs(model: Any, ids: Any, attention: Any, prompt_lens: list[int], response_len: int) -> Any:
    """[B, R] float32 log-probabilities of each response token under `model` (0 past a response's end).

    The token at position s is predicted by the logits at s - 1, so response token j of sequence i
    (at position prompt_lens[i] + j) is read from the logits at prompt_lens[i] + j - 1.
    """
    import torch

    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits  # [B, T, V]
    logp = torch.log_softmax(logits.float(), dim=-1)
    b = ids.shape[0]
    offsets = torch.arange(response_len, device=ids.device)
    starts = torch.tensor(prompt_lens, device=ids.device)[:, None]  # [B, 1]
    pred = (starts - 1 + offsets).clamp(max=ids.shape[1] - 2)  # [B, R] positions of the predicting logits
    target = ids.gather(1, (pred + 1))  # [B, R]
    return logp[torch.arange(b, device=ids.device)[:, None], pred, target]  # [B, R]


def grpo_loss(new: Any, old: Any, ref: Any, advantages: Any, mask: Any, clip_eps: float, beta: float) -> Any:
    """The GRPO loss (module docstring), a scalar: mean over sequences of the mean over each one's tokens.

    new, old, ref, mask: [B, R]; advantages: [B]. `old` and `ref` carry no gradient."""
    import torch

    ratio = torch.exp(new - old)
    a = advantages[:, None]
    surrogate = torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
    log_ref_over_new = ref - new
    kl = torch.exp(log_ref_over_new) - log_ref_over_new - 1
    per_token = -(surrogate - beta * kl) * mask
    return (per_token.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()


def stand_in_reward(response: list[int]) -> float:
    """A rule-based stand-in reward: the share of even token ids in the response (0..1).

    Random weights answer nothing, so a real verifier has nothing to check; like the rule-based
    rewards of DeepSeek-R1-Zero it costs microseconds, so the step's time is unchanged by it.
    """
    return sum(1 for t in response if t % 2 == 0) / max(1, len(response))
