# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated episodes (pure, no ROS): outcomes, determinism, frame contents."""

from __future__ import annotations

import numpy as np
import pytest

from ove_ros.sim.episodes import (
    ROBOT_JOINTS,
    TASKS,
    SimConfig,
    SimWorld,
    episode_id,
    mistake_onsets,
    plan_mistakes,
)

# Six seeds per task: with fail_fraction 0.5 these give each task both outcomes (deterministic by seed).
SEEDS = range(6)


@pytest.fixture(scope="module")
def blind_world():
    """No cameras: physics and experts only (fast)."""
    with SimWorld(SimConfig(cameras=())) as world:
        yield world


def test_expert_with_mistakes_gives_both_outcomes(blind_world):
    outcomes: dict[str, list[bool]] = {}
    for task in blind_world.config.tasks:
        for seed in SEEDS:
            episode = blind_world.rollout(task, seed)
            outcomes.setdefault(task, []).append(episode.success)
            frames = len(episode.frames)
            if episode.success:
                assert episode.frames[-1].success and not any(f.success for f in episode.frames[:-1])
                assert frames <= blind_world.config.max_steps
            else:
                assert frames == blind_world.config.max_steps  # failures run to the cap
            if not episode.plan.failure:
                assert episode.success, f"{task} seed {seed}: the expert without a fatal mistake failed"
    for task, results in outcomes.items():
        assert any(results) and not all(results), f"{task}: outcomes {results} are not mixed"


def test_fatal_mistakes_fail_and_the_fraction_is_about_half():
    config = SimConfig(cameras=())
    plans = [plan_mistakes(task, seed, config) for task in config.tasks for seed in range(200)]
    failing = sum(bool(p.failure) for p in plans) / len(plans)
    assert 0.4 < failing < 0.6
    for task in config.tasks:
        modes = {plan_mistakes(task, s, config).failure for s in range(200)} - {""}
        assert modes == set(TASKS[task].failures)
    wrong = [p for p in plans if p.failure == "wrong_target"]
    # Shifted past MetaWorld's object and goal region (|x| <= 0.1), so the mistake is visible from the start.
    assert wrong and all(abs(p.shift[0]) >= 0.25 for p in wrong)
    assert all(p.shift is None for p in plans if p.failure != "wrong_target")
    with SimWorld(SimConfig(cameras=(), tasks=("pick-place-v3",))) as world:
        seeds = [s for s in range(40) if plan_mistakes("pick-place-v3", s, world.config).failure][:4]
        results = [world.rollout("pick-place-v3", s).success for s in seeds]
    assert sum(results) <= 1, f"fatal mistakes should mostly fail, got {results}"


def test_episodes_are_deterministic_by_seed(blind_world):
    a = blind_world.rollout("push-v3", 3)
    blind_world.rollout("reach-v3", 11)  # other episodes in between must not leak state
    b = blind_world.rollout("push-v3", 3)
    c = blind_world.rollout("push-v3", 4)
    assert a.plan == b.plan
    assert len(a.frames) == len(b.frames)
    positions = [np.stack([f.position for f in e.frames]) for e in (a, b)]
    np.testing.assert_array_equal(*positions)
    assert not np.array_equal(a.frames[0].position, c.frames[0].position) or a.plan != c.plan
    assert a.episode_id == episode_id("push-v3", 3) == "push-v3/seed3"


def test_an_early_release_is_found_at_the_frame_the_gripper_opens(blind_world):
    config = blind_world.config
    released = [s for s in range(60) if plan_mistakes("pick-place-v3", s, config).failure == "early_release"]
    clean = next(s for s in range(60) if not plan_mistakes("pick-place-v3", s, config).failure)
    assert released, "no early release among the first 60 pick-place seeds"
    episode = blind_world.rollout("pick-place-v3", released[0])
    onset = episode.release_frame
    assert onset is not None and 5 <= onset < len(episode.frames) - 6
    positions = np.stack([f.position for f in episode.frames])
    grip = positions[:, ROBOT_JOINTS.index("r_close")] - positions[:, ROBOT_JOINTS.index("l_close")]
    # The fingers close on the object up to the onset, then part (the expert opens over five frames).
    assert grip[onset] >= grip[onset - 5] - 1e-3, grip[onset - 5 : onset + 6]
    assert grip[onset + 5] < grip[onset] - 0.01, grip[onset - 5 : onset + 6]
    assert blind_world.rollout("pick-place-v3", clean).release_frame is None
    # Found again by seed alone (the report's way), None where the plan has no early release.
    from ove_ros.main_job.report import planned_mistakes

    ids = [episode_id("pick-place-v3", released[0]), episode_id("pick-place-v3", clean)]
    assert planned_mistakes(ids, config).releases == [onset, None]


def test_frames_have_the_right_shapes_and_images_change():
    config = SimConfig(tasks=("reach-v3",), cameras=("topview", "gripperPOV"), image_size=48, max_steps=12)
    with SimWorld(config) as world:
        frames = list(world.frames("reach-v3", 5))
        again = list(world.frames("reach-v3", 5))
    assert 2 <= len(frames) <= 12
    for frame in frames:
        assert set(frame.images) == {"topview", "gripperPOV"}
        for image in frame.images.values():
            assert image.shape == (48, 48, 3) and image.dtype == np.uint8
        assert frame.position.shape == frame.velocity.shape == (len(ROBOT_JOINTS),)
        assert np.isfinite(frame.position).all()
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[1].time == pytest.approx(world.dt) and world.dt == pytest.approx(0.0125)
    # Real renders: not blank, the arm moves between the first and last frame, and rendering repeats exactly.
    first, last = frames[0].images["topview"], frames[-1].images["topview"]
    assert first.std() > 10
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 0.5
    np.testing.assert_array_equal(first, again[0].images["topview"])


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="known tasks"):
        SimConfig(tasks=("fly-v3",))
    with pytest.raises(ValueError, match="cameras"):
        SimConfig(cameras=("nosuchcam",))


def test_a_mistake_onset_is_the_first_frame_that_differs_from_the_run_without_it(blind_world):
    config = blind_world.config
    kinds = {"early_release": None, "wrong_target": None, "": None}
    for seed in range(60):
        failure = plan_mistakes("pick-place-v3", seed, config).failure
        kinds[failure] = seed if kinds[failure] is None else kinds[failure]
    assert None not in kinds.values(), kinds
    specs = [("pick-place-v3", kinds[k]) for k in ("early_release", "wrong_target", "")]
    released, wrong, clean = mistake_onsets(specs, config)
    # The clean run of a failure succeeds, and is the planned run until the mistake acts.
    assert released.clean_success and wrong.clean_success and released.frames > released.clean_frames
    # An early release changes nothing before the frame after the one whose action opened the gripper.
    opened = blind_world.rollout(*specs[0]).release_frame  # the expert's own record
    assert released.onset() == opened + 1
    assert max(released.divergence[: opened + 1]) == 0.0 and released.divergence[opened + 1] > 0.0
    # A wrong target steers the arm elsewhere from the first action on, slowly at first.
    assert 1 <= wrong.onset() <= 2 < wrong.onset(0.1) < wrong.clean_frames
    assert list(wrong.divergence[:3]) == sorted(wrong.divergence[:3])
    # No fatal mistake: no onset, and the replanned run is the recorded one.
    assert clean.failure == "" and clean.onset() is None and clean.frames == clean.clean_frames
    assert max(clean.divergence) == 0.0
    # Replaying with an explicit plan: the seed's own plan gives the same frames as none.
    plan = plan_mistakes("pick-place-v3", kinds["wrong_target"], config)
    own = [f.position for f in blind_world.frames("pick-place-v3", kinds["wrong_target"], plan)]
    again = [f.position for f in blind_world.frames("pick-place-v3", kinds["wrong_target"])]
    np.testing.assert_array_equal(np.stack(own), np.stack(again))
