"""Checkpoints written by the reference's own writers load and give the reference's logits."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("recurrentgemma.jax", reason="reference-writer tests need recurrentgemma: pip install '.[test]'")
ocp = pytest.importorskip("orbax.checkpoint", reason="Flax checkpoint tests need orbax-checkpoint: pip install '.[flax]'")

from hybrid_seq import io as hio  # noqa: E402
from tests.io.helpers import assert_same_weights  # noqa: E402
from tests.parity.reference import Case, batch, max_abs_diff, ours_from, reference_model  # noqa: E402

CASE = Case(kinds="RAR", width=32, mlp_expanded_width=48, num_heads=4, lru_width=64, window=4, vocab_size=97)
SETTINGS = dict(attention_window_size=CASE.window, logits_soft_cap=CASE.soft_cap,
                embeddings_scale_by_sqrt_dim=CASE.scale_embeddings)


@pytest.fixture(scope="module")
def reference():
    """(the reference's fp32 params, every leaf perturbed; its logits on `batch(CASE, 10)`), all jitted."""
    model, params = reference_model(CASE)
    want, _ = model(params, *batch(CASE, 10))
    return params, want


def _forward(model):
    return eqx.filter_jit(lambda m, t, p: m(t, p)[0])(model, *batch(CASE, 10))


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "params-wrapped"])
def test_orbax_checkpoint_matches_reference(tmp_path: Path, reference, wrapped: bool) -> None:
    params, want = reference
    path = tmp_path / "2b"
    if wrapped:
        from recurrentgemma.jax import utils

        utils.save_parameters(str(path), params)
    else:
        ocp.PyTreeCheckpointer().save(path, params)
    assert hio.detect(path) == "flax"
    loaded = hio.load(path, **SETTINGS)
    assert max_abs_diff(_forward(loaded), want) < 1e-5


def test_pytorch_checkpoint_matches_reference(tmp_path: Path, reference) -> None:
    torch = pytest.importorskip("torch", reason="writing the reference .pt needs torch: pip install '.[hf]'")
    from recurrentgemma.conversion import flax_params_to_pytorch_state_dict

    params, want = reference
    torch.save(flax_params_to_pytorch_state_dict(params), tmp_path / "2b.pt")
    loaded = hio.load(tmp_path / "2b.pt", **SETTINGS)
    assert max_abs_diff(_forward(loaded), want) < 1e-5
    torch.save(flax_params_to_pytorch_state_dict({"params": params}), tmp_path / "prefixed.pt")
    assert_same_weights(hio.load(tmp_path / "prefixed.pt", **SETTINGS), loaded)


def test_bf16_reference_checkpoints_load_exactly(tmp_path: Path, reference) -> None:
    torch = pytest.importorskip("torch", reason="writing the reference .pt needs torch: pip install '.[hf]'")
    from recurrentgemma.conversion import flax_params_to_pytorch_state_dict

    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), reference[0])
    expected = ours_from(CASE, params)
    ocp.PyTreeCheckpointer().save(tmp_path / "flax", params)
    torch.save(flax_params_to_pytorch_state_dict(params), tmp_path / "ckpt.pt")
    for path in (tmp_path / "flax", tmp_path / "ckpt.pt"):
        loaded = hio.load(path, **SETTINGS)
        assert loaded.dtype == jnp.bfloat16
        assert_same_weights(loaded, expected)


def test_preset_contradicting_the_weights_is_an_error(tmp_path: Path, reference) -> None:
    params, _ = reference
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", params)
    with pytest.raises(ValueError, match=r"ckpt.*does not match preset 'griffin-tiny': width"):
        hio.load(tmp_path / "ckpt", preset="griffin-tiny")
    with pytest.raises(ValueError, match="attention_window_size, logits_soft_cap|do not determine"):
        hio.load(tmp_path / "ckpt")


def test_flax_to_pytorch_keys_are_the_reference_converters(reference) -> None:
    pytest.importorskip("torch", reason="the reference converter needs torch: pip install '.[hf]'")
    from recurrentgemma.conversion import flax_params_to_pytorch_state_dict

    from hybrid_seq.io.pytorch import to_state_dict

    params, _ = reference
    theirs = flax_params_to_pytorch_state_dict(params)
    ours = to_state_dict(ours_from(CASE, params))
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value.numpy(), err_msg=key)
