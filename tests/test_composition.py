"""Hooks and interventions compose: on a random-weights tiny model, so every case runs in milliseconds."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
import torch

from whisperlens import WhisperLensError
from whisperlens.hooked import band_mask, replace_hook
from whisperlens.interventions import (
    AblateHeads,
    AttentionMask,
    Intervention,
    Patch,
    SkipLayers,
    Steer,
    intervention_from_dict,
    interventions_from_json,
)

from .tiny_random import (
    DIMS,
    N_SHORT,
    decode_with_kv_cache,
    random_inputs,
    tiny_random_model,
)

D = DIMS.n_audio_state


@pytest.fixture(scope="module")
def model():
    return tiny_random_model()


@pytest.fixture(scope="module")
def inputs():
    return random_inputs()


def run(model, inputs) -> torch.Tensor:
    mel, tokens = inputs
    with torch.no_grad():
        return model.run(mel, tokens, short_audio=True)


def untouched(model) -> bool:
    attention = [m for m in model.modules() if hasattr(m, "additive_masks")]
    return (not any(h.has_hooks for h in model.hook_dict.values()) and not any(m.additive_masks for m in attention)
            and not any(b.skip for stack in ("encoder", "decoder") for b in model.blocks(stack))
            and not model.encoder.allow_short)


def _vector(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# One of each kind (and of each attention). `patch` and `steer` touch the same hook, so their order matters.
KINDS = {
    "encoder_band": lambda: AttentionMask("encoder", layers=[0], heads=[1], half_width=1),
    "decoder_band": lambda: AttentionMask("decoder", layers=[1], half_width=1),
    "cross_mask": lambda: AttentionMask("decoder", mask=-3 * _vector(0, DIMS.n_text_ctx, DIMS.n_audio_ctx).abs(), cross=True),
    "skip": lambda: SkipLayers([1], "encoder"),
    "ablate_zero": lambda: AblateHeads("encoder.blocks.0.attn", [0]),
    "ablate_mean": lambda: AblateHeads("decoder.blocks.1.cross_attn", [1], "mean"),
    "patch": lambda: Patch("encoder.blocks.1.hook_resid_post", value=_vector(1, 2, D), positions=[2, 3]),
    "steer": lambda: Steer("encoder.blocks.1.hook_resid_post", vector=_vector(2, D), scale=2.0, positions=slice(1, 4)),
}
ORDERED_PAIRS = [p for pair in combinations(KINDS, 2) for p in (pair, pair[::-1])]


def assert_same_cache(cache, reference) -> None:
    assert cache.keys() == reference.keys()
    different = [name for name in reference.keys() if not torch.equal(cache[name], reference[name])]
    assert not different


@pytest.mark.parametrize("first, second", ORDERED_PAIRS)
def test_nested_pair_equals_both_in_one_context(model, inputs, first, second):
    a, b = KINDS[first](), KINDS[second]()
    mel, tokens = inputs
    # Caching every hook reads the attention patterns, which switches off the fused kernel: compare like with like.
    with torch.no_grad():
        reference, reference_cache = model.run_with_cache(mel, tokens, interventions=[a, b], short_audio=True)
    with model.intervene(a, b):
        uncached = run(model, inputs)
    clean = run(model, inputs)
    with model.intervene(a):
        only_a = run(model, inputs)
    with model.intervene(b):
        only_b = run(model, inputs)
    assert not torch.equal(uncached, only_a) and not torch.equal(uncached, only_b) and not torch.equal(only_a, clean)

    with model.intervene(a), model.intervene(b):  # caching inside
        with model.caching() as inner:
            assert torch.equal(run(model, inputs), reference)
        assert torch.equal(run(model, inputs), uncached)  # the cache's exit leaves both interventions on
    with model.caching() as outer, model.intervene(a), model.intervene(b):  # caching outside
        assert torch.equal(run(model, inputs), reference)
    assert_same_cache(inner, reference_cache)
    assert_same_cache(outer, reference_cache)
    assert untouched(model) and torch.equal(run(model, inputs), clean)


def test_an_inner_cache_does_not_remove_an_outer_ablation(model, inputs):
    with model.ablate_heads({"encoder.blocks.0.attn": [0, 1]}):
        ablated = run(model, inputs)
        with model.caching():
            run(model, inputs)
        assert torch.equal(run(model, inputs), ablated)
    assert not torch.equal(run(model, inputs), ablated)


def test_nested_skip_layers_restore_the_previous_value(model, inputs):
    with model.skip_layers([1]):
        skipped = run(model, inputs)
        with model.skip_layers([0, 1]):
            assert not torch.equal(run(model, inputs), skipped)
        assert model.encoder.blocks[1].skip and not model.encoder.blocks[0].skip
        assert torch.equal(run(model, inputs), skipped)
    assert untouched(model)


def test_two_masks_on_one_layer_equal_their_sum_applied_once(model, inputs):
    first, second = -2 * _vector(3, N_SHORT, N_SHORT).abs(), band_mask(N_SHORT, 2)
    with model.attention_mask(first + second, layers=[1]):
        summed = run(model, inputs)
    with model.attention_mask(first, layers=[1]):
        only_first = run(model, inputs)
        with model.attention_mask(second, layers=[1]):
            assert torch.equal(run(model, inputs), summed)
        assert torch.equal(run(model, inputs), only_first)
    assert not torch.equal(summed, only_first)
    assert untouched(model)


def test_hand_added_hooks_survive_contexts_until_removed(model, inputs):
    clean = run(model, inputs)
    name = "encoder.blocks.0.hook_resid_post"
    handle = model.hook_dict[name].add_hook(lambda x, hook: 2 * x)
    [other] = model.add_hook("encoder.blocks.1.hook_mlp_out", lambda x, hook: -x)
    doubled = run(model, inputs)
    with model.caching(name) as cache:
        run(model, inputs)
    with model.hooks(fwd=[(name, lambda x, hook: None)]), model.ablate_heads({"encoder.blocks.1.attn": [0]}):
        pass
    assert torch.equal(run(model, inputs), doubled) and not torch.equal(doubled, clean)
    with model.caching(name) as clean_input:
        handle.remove()
        handle.remove()  # a second remove does nothing
        other.remove()
        run(model, inputs)
    assert torch.allclose(cache[name], 2 * clean_input[name])  # the cache records the value the model goes on with
    assert untouched(model) and torch.equal(run(model, inputs), clean)
    model.add_hook("decoder.*", lambda x, hook: x + 1)
    model.remove_all_hooks()
    assert untouched(model)


def test_an_exception_inside_nested_contexts_removes_exactly_their_own(model, inputs):
    handle = model.hook_dict["decoder.hook_embed"].add_hook(lambda x, hook: x + 0.5)
    with model.intervene(SkipLayers([0], "decoder")):
        outer_only = run(model, inputs)
        with pytest.raises(RuntimeError, match="boom"):
            with model.intervene(KINDS["cross_mask"](), KINDS["patch"]()), model.caching():
                with model.hooks(fwd=[("encoder.*", lambda x, hook: None)]):
                    raise RuntimeError("boom")
        assert torch.equal(run(model, inputs), outer_only)
        assert model.hook_dict["decoder.hook_embed"].has_hooks
    handle.remove()
    assert untouched(model)


def test_a_bad_spec_in_a_stack_applies_none_of_them(model):
    with pytest.raises(WhisperLensError, match="layer 5"):
        with model.intervene(SkipLayers([0]), AblateHeads("encoder.blocks.0.attn", [1]), SkipLayers([5])):
            pass
    assert untouched(model)


def test_the_cache_sees_the_patched_value_whichever_context_came_first(model, inputs):
    value = _vector(4, D)
    patch = Patch("encoder.blocks.0.hook_resid_post", value=value)
    with model.caching("encoder.blocks.0.hook_resid_post") as cache, model.intervene(patch):
        run(model, inputs)
    assert torch.equal(cache["encoder.blocks.0.hook_resid_post"], value.expand(2, N_SHORT, D))


def test_short_audio_context_holds_inside_run(model, inputs):
    mel, _ = inputs
    with pytest.raises(WhisperLensError, match="short-clip mode"):
        model.run(mel)
    with model.short_audio(), torch.no_grad():
        assert model.run(mel).shape == (2, N_SHORT, D)
        with model.short_audio(False):
            assert not model.encoder.allow_short
        assert model.encoder.allow_short
    assert untouched(model)


def test_band_mask_tensor_and_half_width_spec_agree(model, inputs):
    with model.attention_mask(band_mask(N_SHORT, 1), heads=[0]):
        from_tensor = run(model, inputs)
    with model.intervene(AttentionMask("encoder", heads=[0], half_width=1)):
        from_spec = run(model, inputs)
    assert torch.equal(from_tensor, from_spec) and not torch.equal(from_spec, run(model, inputs))


@pytest.mark.parametrize("cross", [True, False])
def test_masks_index_absolute_query_positions_under_the_kv_cache(model, inputs, cross):
    mel, tokens = inputs
    mask = AttentionMask("decoder", mask=-4 * _vector(5, DIMS.n_text_ctx, DIMS.n_text_ctx).abs(), cross=cross)
    with torch.no_grad(), model.short_audio():
        audio_features = model.embed_audio(mel)
        with model.intervene(mask):
            teacher_forced = model.logits(tokens, audio_features)
            stepped = decode_with_kv_cache(model, audio_features, tokens)
    assert torch.allclose(stepped, teacher_forced, atol=1e-4)
    assert not torch.allclose(teacher_forced, model.logits(tokens, audio_features), atol=1e-2)


def test_patch_from_another_runs_cache(model, inputs):
    mel, tokens = inputs
    donor_mel = _vector(6, *mel.shape)
    with torch.no_grad():
        donor_output, donor = model.run_with_cache(donor_mel, short_audio=True, names_filter="encoder.blocks.*.hook_resid_post")
        last = "encoder.blocks.1.hook_resid_post"  # the last block: everything after it is the donor's
        patched = model.run_with_hooks(mel, interventions=[Patch(last, source=donor)], short_audio=True)
        partly, cache = model.run_with_cache(mel, names_filter=last, short_audio=True,
                                             interventions=[Patch(last, source=donor, positions=[0, 4])])
    assert torch.equal(patched, donor_output)
    assert torch.equal(cache[last][:, [0, 4]], donor[last][:, [0, 4]])
    assert not torch.equal(cache[last][:, 1], donor[last][:, 1])
    assert not torch.equal(partly, donor_output)


def test_replace_hook_patches_along_the_hooks_position_axis(model, inputs):
    mel, _ = inputs
    with torch.no_grad():
        names = ["encoder.hook_conv2", "encoder.blocks.0.hook_resid_pre"]
        _, cache = model.run_with_cache(mel, names_filter=names, short_audio=True)
        with model.hooks(fwd=[("encoder.hook_conv2", replace_hook(torch.zeros(D, 1), positions=[3]))]):
            _, patched = model.run_with_cache(mel, names_filter="encoder.blocks.0.hook_resid_pre", short_audio=True)
    conv2 = cache["encoder.hook_conv2"]  # (batch, d, frames): positions on axis 2
    assert conv2.shape == (2, D, N_SHORT)
    changed = (patched["encoder.blocks.0.hook_resid_pre"] - cache["encoder.blocks.0.hook_resid_pre"]).abs().amax(dim=(0, 2))
    assert changed[3] > 0 and changed[[0, 1, 2, 4]].max() == 0


def test_mean_ablation_over_positions_equals_a_supplied_mean(model, inputs):
    mel, tokens = inputs
    z = "decoder.blocks.1.cross_attn.hook_z"
    with torch.no_grad():
        _, cache = model.run_with_cache(mel, tokens, names_filter=z, short_audio=True)
        ablation = AblateHeads("decoder.blocks.1.cross_attn", [1], "mean")
        computed = model.run_with_hooks(mel, tokens, interventions=[ablation], short_audio=True)
        supplied = model.run_with_hooks(mel, tokens, short_audio=True, interventions=[
            AblateHeads("decoder.blocks.1.cross_attn", [1], "mean", mean=cache[z].mean((0, 1)))])
    assert torch.allclose(computed, supplied, atol=1e-5)
    assert not torch.allclose(computed, run(model, inputs), atol=1e-3)


def test_steering_adds_the_scaled_vector_at_the_positions(model, inputs):
    mel, _ = inputs
    name, vector = "encoder.blocks.0.hook_resid_post", _vector(7, D)
    with torch.no_grad():
        _, clean = model.run_with_cache(mel, names_filter=name, short_audio=True)
        steer = Steer(name, vector, 0.5, [1, 2])
        _, steered = model.run_with_cache(mel, names_filter=name, short_audio=True, interventions=[steer])
    difference = steered[name] - clean[name]
    assert torch.allclose(difference[:, [1, 2]], (0.5 * vector).expand(2, 2, D), atol=1e-6)
    assert difference[:, [0, 3, 4]].abs().max() == 0


def every_kind() -> list[Intervention]:
    return [make() for make in KINDS.values()] + [AblateHeads("encoder.blocks.1.attn", [1], "mean", mean=_vector(8, 2, 32))]


def test_specs_round_trip_through_json(model, inputs):
    specs = every_kind()
    text = json.dumps([spec.to_dict() for spec in specs])
    restored = interventions_from_json(text)
    assert [r.to_dict() for r in restored] == json.loads(text)
    assert [type(r) for r in restored] == [type(s) for s in specs]
    assert isinstance(SkipLayers.from_dict({"kind": "skip_layers", "layers": [1]}), SkipLayers)
    for spec, copy in zip(specs, restored, strict=True):
        with model.intervene(spec):
            original = run(model, inputs)
        with model.intervene(copy.to_dict()):  # dicts are accepted as they are
            assert torch.allclose(run(model, inputs), original, atol=1e-6)


def test_specs_that_are_not_data_refuse_to_dict(model, inputs):
    with pytest.raises(WhisperLensError, match="infinite"):
        AttentionMask(mask=band_mask(4, 1)).to_dict()
    with model.caching("encoder.hook_embed") as cache:
        run(model, inputs)
    with pytest.raises(WhisperLensError, match="ActivationCache cannot be written"):
        Patch("encoder.hook_embed", source=cache).to_dict()


@pytest.mark.parametrize("spec, message", [
    ({"kind": "mystery"}, "unknown intervention kind 'mystery'"),
    ({"kind": "skip_layers", "layers": [2]}, "encoder layer 2 is out of range"),
    ({"kind": "skip_layers", "layer": [0]}, "unknown field 'layer'"),
    ({"kind": "attention_mask", "stack": "decoder", "heads": [2], "half_width": 3}, "head 2 is out of range"),
    ({"kind": "attention_mask", "layers": [0]}, "exactly one of half_width and mask"),
    ({"kind": "attention_mask", "half_width": 3, "cross": True}, "cross-attention belongs to the decoder"),
    ({"kind": "attention_mask", "stack": "middle", "half_width": 3}, "stack must be"),
    ({"kind": "ablate_heads", "attention": "encoder.blocks.0.attn", "heads": [7]}, "head 7 is out of range"),
    ({"kind": "ablate_heads", "attention": "encoder.blocks.0.mlp", "heads": [0]}, "no attention module"),
    ({"kind": "ablate_heads", "attention": "encoder.blocks.0.attn", "heads": [0], "method": "median"}, "method"),
    ({"kind": "patch", "hook": "encoder.blocks.9.hook_resid_post", "value": [0.0]}, "no hook point matches"),
    ({"kind": "patch", "hook": "encoder.hook_embed"}, "exactly one of value and source"),
    ({"kind": "steer", "hook": "encoder.nowhere", "vector": [1.0]}, "no hook point matches"),
    ({"kind": "skip_layers", "layers": ["1"]}, "layers are integers"),
    ("skip", "a dict with a 'kind'"),
])
def test_bad_specs_are_one_line_errors(model, spec, message):
    with pytest.raises(WhisperLensError, match=message) as error:
        with model.intervene(spec if isinstance(spec, str) else intervention_from_dict(spec)):
            pass
    assert "\n" not in str(error.value)
    assert untouched(model)
