"""The GRPO arithmetic (workloads/grpo.py) on exact values."""

from __future__ import annotations

import math

import pytest
import torch

from workloads.grpo import group_advantages, grpo_loss, pack, response_logprobs, stand_in_reward


def test_group_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    adv = group_advantages(rewards, eps=0.0)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item()  # Bessel-corrected, as torch.std
    assert adv[0].tolist() == pytest.approx([0.5 / std, -0.5 / std, -0.5 / std, 0.5 / std])
    assert group_advantages(rewards)[1].tolist() == [0.0] * 4  # equal rewards: no signal
    assert group_advantages(torch.tensor([[3.0], [1.0]])).tolist() == [[0.0], [0.0]]  # a group of one


def test_loss_at_the_old_policy_is_minus_the_mean_advantage():
    # ratio 1 and new == ref: the surrogate is A per token and the KL is 0
    new = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    assert grpo_loss(new, new, new, adv, mask, 0.2, 0.04).item() == pytest.approx(-(2.0 - 1.0) / 2)


def test_ratio_is_clipped_and_kl_is_the_k3_estimator():
    old = torch.zeros(1, 1)
    new = torch.tensor([[math.log(1.5)]])  # ratio 1.5, clipped to 1.2 for a positive advantage
    ref = torch.zeros(1, 1)
    kl = math.exp(-math.log(1.5)) + math.log(1.5) - 1  # exp(ref - new) - (ref - new) - 1
    got = grpo_loss(new, old, ref, torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.5).item()
    assert got == pytest.approx(-(1.2 * 1.0 - 0.5 * kl))
    # a negative advantage takes the unclipped (lower) term: min(1.5 * -1, 1.2 * -1) = -1.5
    assert grpo_loss(new, old, ref, torch.tensor([-1.0]), torch.ones(1, 1), 0.2, 0.0).item() == pytest.approx(1.5)


def test_response_logprobs_read_the_logits_that_predict_each_response_token():
    torch.manual_seed(0)
    vocab = 11

    class Bigram(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(vocab, vocab))

        def forward(self, input_ids, attention_mask=None, use_cache=False):
            return type("Out", (), {"logits": self.table[input_ids]})

    model = Bigram()
    prompts, responses = [[1, 2, 3], [4]], [[5, 6], [7, 8, 9]]
    ids, attention, mask, starts = pack(prompts, responses, "cpu")
    assert ids.tolist() == [[1, 2, 3, 5, 6], [4, 7, 8, 9, 0]] and attention.sum(1).tolist() == [5, 4]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]] and starts == [3, 1]
    got = response_logprobs(model, ids, attention, starts, 3)
    table = torch.log_softmax(model.table.detach(), dim=-1)
    assert got[0, :2].tolist() == pytest.approx([table[3, 5].item(), table[5, 6].item()])
    assert got[1].tolist() == pytest.approx([table[4, 7].item(), table[7, 8].item(), table[8, 9].item()])


def test_stand_in_reward_is_the_share_of_even_ids():
    assert stand_in_reward([2, 3, 4, 5]) == 0.5 and stand_in_reward([]) == 0.0
