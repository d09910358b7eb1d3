"""The towers and the training tasks: shapes, masking, the adapter delta, learning a transfer."""
from __future__ import annotations

import torch

from crossrec.model import CrossDomainModel, TrainTask
from crossrec.model.task import NEG_INF, history_mask, rank_metrics
from crossrec.schemas import columns as C
from tests.modelfix import P, planted_batch, planted_model


def test_shapes_and_empty_history_is_finite():
    model = planted_model()
    batch = planted_batch(5, seed=1)
    batch[C.HIST_MASK][0] = False  # a user with no history at all
    users = model.user_vectors(batch)
    u, v = model(batch)
    assert users.shape == (5, 2, 16) and u.shape == v.shape == (5, 16)
    assert torch.isfinite(users).all()


def test_user_tower_is_inductive_it_never_reads_user_ids():
    model = planted_model()
    batch = planted_batch(6, seed=2)
    other = {**batch, C.USER_IDX: batch[C.USER_IDX] + 10_000}  # users unknown at training time
    assert torch.equal(model(batch)[0], model(other)[0])


def test_item_vector_uses_text_so_items_without_interactions_differ():
    model = planted_model()
    items = torch.tensor([0, 1])
    before = model.items(items)
    model.items.text[0] += 1.0
    after = model.items(items)
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1], after[1])


def test_domains_share_the_map_until_deltas_move():
    model = planted_model()
    users = model.user_vectors(planted_batch(4, seed=3))
    assert torch.equal(users[:, 0], users[:, 1])  # Δθ_t = 0 at init: θ_t = θ_s
    with torch.no_grad():
        model.users.adapter.a[1].normal_()
    users = model.user_vectors(planted_batch(4, seed=3))
    assert not torch.allclose(users[:, 0], users[:, 1])


def test_delta_penalty_is_the_frobenius_norm_of_each_low_rank_delta():
    adapter = planted_model().users.adapter
    with torch.no_grad():
        adapter.a.normal_()
        adapter.offset.normal_()
    expected = sum(torch.linalg.norm(adapter.a[t] @ adapter.b[t].T) ** 2 for t in range(2))
    expected = expected + adapter.offset.pow(2).sum()
    assert torch.allclose(adapter.delta_penalty(), expected, rtol=1e-4)


def test_history_mask_hides_seen_items_but_not_padding_or_the_target():
    batch = {C.HIST_ITEM: torch.tensor([[3, 0, 5], [2, 2, 0]]),
             C.HIST_MASK: torch.tensor([[True, False, True], [True, True, False]]),
             C.ITEM_IDX: torch.tensor([5, 1])}
    out = history_mask(torch.zeros(2, 6), batch)
    masked = (out == NEG_INF).nonzero().tolist()
    assert masked == [[0, 3], [1, 2]]  # item 0 is padding in both rows, 5 is row 0's target


def test_full_softmax_only_lets_target_domain_items_compete():
    model = planted_model()
    task = TrainTask.create("full", model)
    batch = planted_batch(4, seed=4)
    logits, labels = task.logits(batch)
    assert (logits[:, :P] == NEG_INF).all() and (logits[:, P:] > NEG_INF).all()
    assert torch.equal(labels, batch[C.ITEM_IDX])


def test_in_batch_masks_other_domains_and_duplicate_positives():
    model = planted_model()
    task = TrainTask.create("in_batch", model, item_logq=torch.full((2 * P,), -3.0))
    batch = planted_batch(3, seed=5)
    batch[C.ITEM_IDX] = torch.tensor([P, P, 3])
    batch[C.DOMAIN_IDX] = torch.tensor([1, 1, 0])
    logits, labels = task.logits(batch)
    assert torch.equal(labels, torch.arange(3))
    assert logits[0, 1] == NEG_INF and logits[1, 0] == NEG_INF  # the same item twice
    assert logits[0, 2] == NEG_INF and logits[2, 0] == NEG_INF  # another domain
    assert torch.isfinite(logits.diagonal()).all() and logits.diagonal().gt(NEG_INF).all()


def test_rank_metrics_match_a_brute_force_ranking():
    model = planted_model(seed=3)
    batch = planted_batch(20, seed=6)
    hits, ndcg, n = rank_metrics(model, batch, k=3).tolist()
    u, _ = model(batch)
    vecs, bias = model.items.all()
    want_hits = want_ndcg = 0.0
    for b in range(20):
        scores = {i: float((u[b] @ vecs[i] + bias[i]).detach()) for i in range(P, 2 * P)
                  if i != int(batch[C.HIST_ITEM][b, 0]) or i == int(batch[C.ITEM_IDX][b])}
        order = sorted(scores, key=lambda i: -scores[i])
        pos = order.index(int(batch[C.ITEM_IDX][b]))
        if pos < 3:
            want_hits += 1
            want_ndcg += 1 / torch.log2(torch.tensor(pos + 2.0)).item()
    assert n == 20 and hits == want_hits and abs(ndcg - want_ndcg) < 1e-6


def test_both_losses_learn_a_cross_domain_transfer():
    for kind in ("full", "in_batch"):
        model = planted_model(seed=1)
        extra = {"item_logq": torch.full((2 * P,), -3.0)} if kind == "in_batch" else {}
        task = TrainTask.create(kind, model, **extra)
        opt = torch.optim.Adam(task.parameters(), lr=0.02)
        test = planted_batch(200, seed=99)
        before = rank_metrics(model, test, k=1)[0].item() / 200
        for step in range(150):
            loss, _ = task(planted_batch(64, seed=step))
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = rank_metrics(model, test, k=1)[0].item() / 200
        assert before < 0.3 and after > 0.9, (kind, before, after)


def test_unknown_loss_names_the_choices():
    import pytest

    with pytest.raises(ValueError, match="full"):
        TrainTask.create("nope", planted_model())
    assert isinstance(planted_model(), CrossDomainModel)


def test_serving_scores_equal_the_training_forward():
    from crossrec.model.serving import item_embeddings, user_embeddings

    model = planted_model(seed=4)
    batch = planted_batch(6, seed=8)
    items = item_embeddings(model)
    users = user_embeddings(model, batch, items)
    u, v = model(batch)
    target_domain_users = users[torch.arange(6), batch[C.DOMAIN_IDX]]
    assert torch.allclose(target_domain_users, u, atol=1e-6)
    assert torch.allclose(items.vectors[batch[C.ITEM_IDX]], v, atol=1e-6)
    idx, vecs, _ = items.of_domain(1)
    assert idx.tolist() == list(range(P, 2 * P)) and vecs.shape == (P, 16)


def test_context_without_autograd_is_the_same_floats_from_one_table():
    """Scoring's path (no grad: one lookup in a table of every domain x value x age) gives the
    bits of training's three lookups, for every bucket, and so the same user vectors."""
    model = planted_model()
    tower, cfg = model.users, model.cfg
    with torch.no_grad():
        for p in (tower.slot_domain.weight, tower.slot_value.weight, tower.slot_age.weight):
            p.normal_(0, 1.0)      # not the init's small values: rounding shows in every add
    grid = torch.cartesian_prod(torch.arange(cfg.n_domains), torch.arange(cfg.value_buckets),
                                torch.arange(cfg.age_buckets)).T.reshape(3, 4, -1)
    trained = tower.context(*grid)
    assert trained.requires_grad
    with torch.inference_mode():
        served = tower.context(*grid)
    assert torch.equal(served, trained.detach())
    batch = planted_batch(7, seed=4)
    batch[C.HIST_AGE] = torch.rand(7, 3) * 900
    batch[C.HIST_VALUE] = torch.randint(0, 6, (7, 3)).float()
    with torch.no_grad():
        served = model.user_vectors(batch)
    assert torch.equal(served, model.user_vectors(batch).detach())
