# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Joint normalization, state discretization, prompt text and the local tokenizer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ove_ros.prompt import (
    StateNormalizer,
    build_prompt,
    clean_task,
    discretize,
    prompt_prefix,
)
from ove_ros.tokenizer import LOCAL_VOCAB_SIZE, build_local_tokenizer, load_tokenizer


def test_normalizer_maps_training_range_to_unit_interval_and_clips():
    norm = StateNormalizer([0.0, -2.0, 5.0], [10.0, 2.0, 5.0])
    out = norm.normalize([[0.0, -2.0, 5.0], [10.0, 2.0, 7.0], [5.0, 0.0, 1.0], [20.0, -9.0, 5.0]])
    expected = [[-1, -1, 0], [1, 1, 0], [0, 0, 0], [1, -1, 0]]  # joint 2 never moved: always the middle
    np.testing.assert_allclose(out, expected)


def test_normalizer_from_data_uses_per_joint_min_max():
    data = np.array([[1.0, 4.0], [3.0, -4.0], [2.0, 0.0]])
    norm = StateNormalizer.from_data(data, ["a", "b"])
    np.testing.assert_array_equal(norm.low, [1.0, -4.0])
    np.testing.assert_array_equal(norm.high, [3.0, 4.0])
    assert StateNormalizer.from_dict(norm.to_dict()).to_dict() == norm.to_dict()


def test_non_finite_state_names_joint_index_and_name():
    norm = StateNormalizer([0.0] * 3, [1.0] * 3, ["shoulder", "elbow", "wrist"])
    with pytest.raises(ValueError, match=r"joint 1 \('elbow'\).*drop or repair"):
        norm.normalize([0.5, np.nan, 0.5])
    with pytest.raises(ValueError, match=r"joint 2 \('wrist'\) in row 1"):
        norm.normalize([[0.5, 0.5, 0.5], [0.5, 0.5, np.inf]])
    with pytest.raises(ValueError, match="joint 0"):
        StateNormalizer([0.0], [1.0]).normalize([np.nan])


def test_normalizer_rejects_bad_shapes_and_ranges():
    norm = StateNormalizer([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="expects 2 joints"):
        norm.normalize([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="low > high at joint 1"):
        StateNormalizer([0.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 joint names for 1 joints"):
        StateNormalizer([0.0], [1.0], ["a", "b"])


def test_discretize_ends_and_middle():
    np.testing.assert_array_equal(discretize([-1.0, 0.0, 1.0, -5.0, 5.0]), [0, 128, 255, 0, 255])
    np.testing.assert_array_equal(discretize([-1.0 + 1.99 / 128, -1.0 + 2.01 / 128]), [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        discretize([0.0, np.nan])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=20))
def test_discretize_is_monotone_and_in_range(xs):
    bins = discretize(sorted(xs))
    assert bins.min() >= 0 and bins.max() <= 255
    assert np.all(np.diff(bins) >= 0)
    # Each bin covers an interval of width 2/256 starting at -1 + 2k/256.
    lows = -1.0 + bins * (2.0 / 256)
    assert np.all(np.asarray(sorted(xs)) >= lows - 1e-12)


def test_prompt_text_format():
    assert build_prompt("pick up the cup", [0, 128, 255]) == "Task: pick up the cup, State: 0 128 255;"
    assert prompt_prefix("  open\n the   drawer ") == "Task: open the drawer, State:"
    assert clean_task("a\tb") == "a b"
    with pytest.raises(ValueError, match="task description is empty"):
        clean_task("   ")
    with pytest.raises(ValueError, match="integer bins"):
        build_prompt("x", [0.5])


def test_local_tokenizer_numbers_are_single_tokens_and_padding_is_right(tmp_path):
    tok = build_local_tokenizer()
    assert len(tok) == LOCAL_VOCAB_SIZE
    for b in (0, 7, 42, 199, 255):
        assert tok.convert_ids_to_tokens(tok(f" {b}", add_special_tokens=False)["input_ids"]) == [" ", str(b)]
    enc = tok(["Task: a, State: 1 2;", "ab"], padding=True)
    assert enc["input_ids"][0][0] == tok.bos_token_id
    assert enc["attention_mask"][1] == [1, 1, 1] + [0] * (len(enc["attention_mask"][0]) - 3)
    assert enc["input_ids"][1][3] == tok.pad_token_id == 0
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "Task: pick up the bottle, State: 0 17 255;"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.padding_side == "right"


def test_load_tokenizer_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not available offline"):
        load_tokenizer(tmp_path / "nothing-here")
