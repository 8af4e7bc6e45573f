"""The MI bounds and loss terms on hand-made inputs."""

import math

import numpy as np
import pytest
import torch

from mirage.augment.losses import info_nce_unique, mode_seeking, moment_matching, symmetric_contrastive
from mirage.augment.mi import entropy_nats, mi_t_bound, mi_y_bound, normalised_score, score_samples


def test_entropy():
    assert entropy_nats([0.25] * 4) == pytest.approx(math.log(4))
    assert entropy_nats([1.0, 0.0]) == 0.0


def test_perfect_classifier_gives_h_y_and_uniform_gives_zero():
    prior = np.array([0.5, 0.25, 0.25])
    y = torch.tensor([0, 0, 1, 2] * 10)
    perfect = torch.nn.functional.one_hot(y, 3).double() * 60.0
    mi, ceiling = mi_y_bound(perfect, y, prior)
    assert ceiling == pytest.approx(entropy_nats(prior))
    assert mi == pytest.approx(ceiling, abs=1e-9)
    # Q_y that outputs the prior itself carries no information about ĥ.
    prior_logits = torch.log(torch.tensor(prior)).repeat(len(y), 1)
    mi0, _ = mi_y_bound(prior_logits, y, prior)
    assert mi0 == pytest.approx(0.0, abs=1e-9)
    s = score_samples(perfect, y, prior)
    assert s.score == pytest.approx(1.0)
    assert np.allclose(s.pointwise_score, 1.0)


def test_wrong_classifier_is_clipped_to_zero_score():
    prior = np.array([0.5, 0.5])
    y = torch.tensor([0, 1] * 8)
    wrong = torch.nn.functional.one_hot(1 - y, 2).double() * 10
    s = score_samples(wrong, y, prior)
    assert s.mi_y_nats < 0  # raw nats stay raw
    assert s.score == 0.0
    assert (s.pointwise_score == 0).all()


def test_info_nce_bound_at_most_log_b():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(32, 8, generator=g)
    ids = torch.arange(32)
    perfect = t * 5
    bound, ceiling = mi_t_bound(perfect, t, ids, tau=0.05, batch=32)
    assert ceiling == pytest.approx(math.log(32))
    assert bound <= math.log(32) + 1e-9
    assert bound > 0.9 * math.log(32)
    random_q = torch.randn(32, 8, generator=g)
    low, _ = mi_t_bound(random_q, t, ids, tau=0.05, batch=32)
    assert low < bound


def test_duplicate_texts_are_one_candidate():
    t_unique = torch.eye(4)
    t = t_unique[[0, 0, 1, 1, 2, 3]]
    ids = torch.tensor([0, 0, 1, 1, 2, 3])
    loss, n_distinct = info_nce_unique(t * 50, t, ids, tau=0.1)
    assert n_distinct.item() == 4
    assert loss.max() < 1e-3  # a duplicate is never a false negative (it would cost log 2)
    bound, ceiling = mi_t_bound(t * 50, t, ids, tau=0.1, batch=6)
    assert ceiling == pytest.approx(math.log(4))


def test_symmetric_contrastive_matches_clip_for_unique_texts():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    ids = torch.arange(8)
    logits = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T / 0.1
    target = torch.arange(8)
    clip = 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))
    assert symmetric_contrastive(a, b, ids, 0.1).item() == pytest.approx(clip.item(), rel=1e-5)


def test_normalised_score_averages_terms():
    assert normalised_score([(1.0, 2.0), (3.0, 3.0)]) == pytest.approx(0.75)
    assert normalised_score([(1.0, 0.0)]) == 0.0
    assert normalised_score([(5.0, 2.0)]) == 1.0


def test_diversity_and_moment_terms():
    z1, z2 = torch.zeros(4, 2), torch.ones(4, 2)
    spread = mode_seeking(torch.zeros(4, 3), torch.full((4, 3), 2.0), z1, z2)
    collapsed = mode_seeking(torch.zeros(4, 3), torch.zeros(4, 3), z1, z2)
    assert spread < collapsed
    y = torch.tensor([0, 0, 1, 1])
    x = torch.tensor([[0.0], [1.0], [5.0], [6.0]])
    assert moment_matching(x, x, y, y, 2).item() == pytest.approx(0.0)
    assert moment_matching(x + 1, x, y, y, 2).item() > 0.5


def test_text_identities_follow_the_transcript():
    from mirage.augment.data import text_identities

    emb = np.array([[1.0, 0.0], [1.0, 1e-7], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    # same sentence embedded in two batches differs in the last bits: still one identity
    assert text_identities(emb, ["a", "a", "b", "b"]).tolist() == [0, 0, 1, 1]
    # no transcript: the embedding bytes decide
    ids = text_identities(emb, ["", "", "", ""])
    assert ids[2] == ids[3] and len(set(ids.tolist())) == 3
