# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""MetaWorld episodes driven by the shipped scripted experts, with injected mistakes (pure: no ROS).

The value function has to tell good runs from bad ones, so the data needs both: every episode gets small
nuisances (action noise, slower motion, short pauses) that rarely change the outcome, and about half get one
fatal mistake that is visible in the scene well before the episode ends:

- ``wrong_target``: the expert perceives the object and the goal shifted 25-35 cm sideways (a calibration
  error), so from the first frames it carries out a clean motion at the wrong place, outside the region where
  objects and goals ever are (reach, push, pick-place);
- ``early_release``: the gripper opens a few centimetres after lifting the object and the arm carries on to
  the goal empty-handed (pick-place).

The outcome is always the environment's own ``info["success"]``; an episode ends on the first success or
after ``max_steps`` frames. Everything (object and goal positions, mistakes, noise) follows from
``(task, seed)``, so held-out episodes are new seeds of the same tasks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

GL_BACKENDS = ("egl", "osmesa")
GL_HELP = (
    "MuJoCo needs a headless OpenGL to render the cameras: EGL (Debian: apt-get install libegl1 libegl-mesa0 "
    "libgl1-mesa-dri) or OSMesa (Debian: apt-get install libosmesa6); or set MUJOCO_GL yourself"
)


def _egl_device_count() -> int:
    """Number of EGL devices (Mesa's software device counts), 0 when libEGL or the extension is missing."""
    name = ctypes.util.find_library("EGL")
    if not name:
        return 0
    try:
        egl = ctypes.CDLL(name)
        egl.eglGetProcAddress.restype = ctypes.c_void_p
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        address = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
        if not address:
            return 0
        query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int))(
            address
        )
        count = ctypes.c_int(0)
        return count.value if query(0, None, ctypes.byref(count)) else 0
    except OSError:
        return 0


def select_gl_backend() -> str:
    """Pick MuJoCo's headless GL (``MUJOCO_GL``) before mujoco is imported: egl, else osmesa.

    An explicit ``MUJOCO_GL`` wins. The choice goes into the environment, so child processes inherit it.
    """
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not chosen:
        if _egl_device_count() > 0:
            chosen = "egl"
        elif ctypes.util.find_library("OSMesa"):
            chosen = "osmesa"
        else:
            raise RuntimeError(f"no headless OpenGL found. {GL_HELP}")
        os.environ["MUJOCO_GL"] = chosen
    return chosen


GL_BACKEND = select_gl_backend()

import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)
from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE  # noqa: E402
from metaworld.policies import ENV_POLICY_MAP  # noqa: E402

ROBOT_JOINTS = ("right_j0", "right_j1", "right_j2", "right_j3", "right_j4", "right_j5", "right_j6",
                "r_close", "l_close")
FAILURE_MODES = ("wrong_target", "early_release")
RELEASE_HOVER = np.array([0.0, 0.0, 0.08])  # stay above the dropped object instead of sweeping it
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")


@dataclass(frozen=True)
class TaskSpec:
    """A MetaWorld task, its instruction text, and the fatal mistakes that make sense for it."""

    env_name: str
    instruction: str
    failures: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    spec.env_name: spec
    for spec in (
        TaskSpec("reach-v3", "reach the goal", ("wrong_target",)),
        TaskSpec("push-v3", "push the puck to the goal", ("wrong_target",)),
        TaskSpec("pick-place-v3", "pick up the puck and place it at the goal",
                 ("wrong_target", "early_release")),
    )
}


@dataclass(frozen=True)
class SimConfig:
    """What the simulated robot runs and shows."""

    tasks: tuple[str, ...] = ("reach-v3", "push-v3", "pick-place-v3")
    cameras: tuple[str, ...] = ("topview", "gripperPOV")  # empty: no rendering (fast outcome statistics)
    image_size: int = 64  # square images, pixels
    max_steps: int = 100  # frames per episode at most (failures run to it); slowest success seen: 70
    fail_fraction: float = 0.5  # probability of a fatal mistake per episode
    noise_std_max: float = 0.1  # per-episode action noise std is drawn from [0, this]
    speed_min: float = 0.9  # per-episode speed factor is drawn from [speed_min, 1]
    max_pauses: int = 1  # short stops (2-5 frames) per episode, outcome-neutral
    shift_range: tuple[float, float] = (0.25, 0.35)  # wrong_target: sideways error of the perception, m
    position_range: float = 0.5  # object/goal randomization as a fraction of MetaWorld's ranges
    shadows: bool = False  # shadows are costly with software rendering

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "shift_range", tuple(self.shift_range))
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"SimConfig.tasks: bad {unknown or self.tasks}; known tasks: {sorted(TASKS)}")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"SimConfig.cameras: unknown {bad}; MetaWorld has {list(CAMERAS)}")
        if not 0.0 < self.position_range <= 1.0:
            raise ValueError(f"SimConfig.position_range must be in (0, 1], got {self.position_range}")
        if self.image_size < 8 or self.max_steps < 2 or not 0.0 <= self.fail_fraction <= 1.0:
            raise ValueError(f"SimConfig: invalid image_size/max_steps/fail_fraction in {self}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class MistakePlan:
    """The deviations from the expert in one episode (all drawn from the episode's seed)."""

    failure: str = ""  # "" (none), "wrong_target" or "early_release"
    shift: tuple[float, float, float] | None = None  # wrong_target: error added to the perceived positions
    release_after: float = 0.0  # early_release: metres carried before the gripper opens
    noise_std: float = 0.0
    speed: float = 1.0
    pauses: tuple[tuple[int, int], ...] = ()  # (first frame, length)


def _task_code(task: str) -> int:
    return zlib.crc32(task.encode("utf-8"))


def plan_mistakes(task: str, seed: int, config: SimConfig) -> MistakePlan:
    """The mistakes of episode ``(task, seed)``; a pure function of its arguments."""
    spec = TASKS[task]
    rng = np.random.default_rng([int(seed), _task_code(task), 1])
    failure = ""
    shift = None
    release = 0.0
    if rng.random() < config.fail_fraction:
        failure = str(rng.choice(spec.failures))
        side = float(rng.choice([-1.0, 1.0]))
        offset = (side * float(rng.uniform(*config.shift_range)), float(rng.uniform(-0.05, 0.05)), 0.0)
        release = float(rng.uniform(0.01, 0.04))
        shift = offset if failure == "wrong_target" else None
    pauses = tuple(
        (int(rng.integers(5, max(6, config.max_steps // 2))), int(rng.integers(2, 6)))
        for _ in range(int(rng.integers(0, config.max_pauses + 1)))
    )
    return MistakePlan(
        failure=failure, shift=shift, release_after=release,
        noise_std=float(rng.uniform(0.0, config.noise_std_max)),
        speed=float(rng.uniform(config.speed_min, 1.0)), pauses=pauses,
    )


class MistakenExpert:
    """The task's scripted MetaWorld expert with one episode's mistakes applied to what it sees and does."""

    def __init__(self, task: str, plan: MistakePlan, seed: int) -> None:
        self.policy = ENV_POLICY_MAP[task]()
        self.plan = plan
        self.rng = np.random.default_rng([int(seed), _task_code(task), 2])
        self.released = False
        self.release_step: int | None = None  # early release: the frame whose action opened the gripper
        self.open_frames = 0
        self.grip = -1.0
        self.carry_start: np.ndarray | None = None

    def _paused(self, step: int) -> bool:
        return any(start <= step < start + length for start, length in self.plan.pauses)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        """Action for ``obs`` at frame ``step`` (xyz delta in [-1, 1] and grip effort)."""
        if self._paused(step):  # stand still, keep whatever is held
            return np.array([0.0, 0.0, 0.0, self.grip], dtype=np.float32)
        seen = np.array(obs, dtype=np.float64)
        if self.plan.failure == "wrong_target" and self.plan.shift is not None:
            seen[4:7] += self.plan.shift  # the object ...
            seen[-3:] += self.plan.shift  # ... and the goal, as the expert perceives them
        action = np.asarray(self.policy.get_action(seen), dtype=np.float64).copy()
        if self.plan.failure == "early_release":
            action = self._early_release(obs, action)
            if self.released and self.release_step is None:
                self.release_step = int(step)
        action[:3] = action[:3] * self.plan.speed + self.rng.normal(0.0, self.plan.noise_std, 3)
        self.grip = float(action[3])
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _early_release(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        hand, gripper, obj, goal = obs[:3], obs[3], obs[4:7], obs[-3:]
        holding = gripper < 0.73 and float(np.linalg.norm(obj - hand)) < 0.065  # held ~5 cm below
        if holding and self.carry_start is None:
            self.carry_start = hand.copy()
        if self.carry_start is not None and not self.released:
            self.released = float(np.linalg.norm(hand - self.carry_start)) >= self.plan.release_after
        if self.released:  # opens in place, then carries on over the goal as if still holding the object
            self.open_frames += 1
            opening = self.open_frames <= 5
            action[:3] = 0.0 if opening else np.clip(10.0 * (goal + RELEASE_HOVER - hand), -1.0, 1.0)
            action[3] = -1.0
        return action


@dataclass
class Frame:
    """One observation: camera images, robot joints, and whether the task is solved at this frame."""

    index: int
    time: float  # seconds of simulated time since the episode start
    images: dict[str, np.ndarray]  # camera -> uint8 HxWx3 RGB
    position: np.ndarray  # float64 [len(ROBOT_JOINTS)], rad / m
    velocity: np.ndarray
    success: bool


@dataclass
class Episode:
    """A finished rollout."""

    task: str
    seed: int
    instruction: str
    plan: MistakePlan
    frames: list[Frame] = field(default_factory=list)
    release_frame: int | None = None  # early release: the frame whose action opened the gripper

    @property
    def success(self) -> bool:
        return bool(self.frames and self.frames[-1].success)

    @property
    def episode_id(self) -> str:
        return episode_id(self.task, self.seed)


@dataclass(frozen=True)
class EpisodeSpec:
    task: str
    seed: int


@dataclass(frozen=True)
class MistakeOnset:
    """How a fatal mistake unfolds, measured against the same episode run without it."""

    failure: str  # the plan's fatal mistake ("" for none)
    frames: int  # frames of the episode as recorded
    clean_frames: int  # frames of the clean run (its success time, or max_steps)
    clean_success: bool
    divergence: tuple[float, ...]  # per frame: largest joint difference from the clean run, rad / m

    def onset(self, tolerance: float = 1e-9) -> int | None:
        """First frame whose joints differ from the clean run's by more than ``tolerance`` (None: no fatal
        mistake; the episode's length if they never do)."""
        if not self.failure:
            return None
        over = np.flatnonzero(np.asarray(self.divergence) > tolerance)
        return int(over[0]) if over.size else len(self.divergence)


def mistake_onsets(specs: Sequence[tuple[str, int]], config: SimConfig) -> list[MistakeOnset]:
    """For each ``(task, seed)`` episode, how far its robot strays from the same episode without its fatal
    mistake, frame by frame.

    The episode is run twice without cameras, as planned and with the fatal mistake removed (same scene,
    noise, speed and pauses). Physics and experts are deterministic, so up to the first frame whose joints
    differ the two runs are the same, and no observer, however it looks at the frames up to then, can tell
    the failure from a success: that bounds what any causal value estimate can know
    (``benchmarks/bench_value_ceilings.py``)."""
    blind = replace(config, cameras=())
    out: list[MistakeOnset] = []
    with SimWorld(blind) as world:
        for task, seed in specs:
            plan = plan_mistakes(task, seed, config)
            clean_plan = replace(plan, failure="", shift=None, release_after=0.0)
            clean = list(world.frames(task, seed, clean_plan))
            ref = np.stack([f.position for f in clean])
            # Deterministic physics: a plan without a fatal mistake is its own clean run (one replay).
            run = ref if plan == clean_plan else np.stack([f.position
                                                           for f in world.frames(task, seed, plan)])
            n = min(len(run), len(ref))
            gap = np.abs(run[:n] - ref[:n]).max(axis=1)
            if len(run) > n:  # the clean run ended (success): count every later frame as different
                gap = np.r_[gap, np.full(len(run) - n, np.inf)]
            out.append(MistakeOnset(plan.failure, len(run), len(clean), bool(clean[-1].success),
                                    tuple(float(g) for g in gap)))
    return out


def episode_id(task: str, seed: int) -> str:
    """Identifier carried in EpisodeEvent.episode_id (and back into the dataset)."""
    return f"{task}/seed{int(seed)}"


class _TaskSim:
    """One task's environment and renderer (built once: compiling a MetaWorld model is slow)."""

    def __init__(self, task: str, config: SimConfig) -> None:
        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"]()
        self.env._freeze_rand_vec = False  # new object/goal positions on reset, drawn from env.seed(...)
        self.env.seeded_rand_vec = True
        space = self.env._random_reset_space  # object and goal positions are drawn from this box
        center, half = (space.low + space.high) / 2, (space.high - space.low) / 2 * config.position_range
        space.low[:], space.high[:] = center - half, center + half
        model = self.env.model
        self.joint_qpos = np.array([model.jnt_qposadr[model.joint(n).id] for n in ROBOT_JOINTS])
        self.joint_dof = np.array([model.jnt_dofadr[model.joint(n).id] for n in ROBOT_JOINTS])
        self.renderer = None
        if config.cameras:
            model.vis.quality.offsamples = 0  # no multisampling: software GL
            try:
                self.renderer = mujoco.Renderer(model, config.image_size, config.image_size)
            except Exception as exc:  # the GL stack fails in many ways (EGLError, missing symbols, ...)
                raise RuntimeError(f"cannot render with MUJOCO_GL={GL_BACKEND}: {exc!r}. {GL_HELP}") from exc
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(config.shadows)
            self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(config.shadows)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.env.close()


class SimWorld:
    """Runs episodes one frame at a time (``reset`` then ``step`` until ``done``); owns the renderers."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._sims: dict[str, _TaskSim] = {}
        self._sim: _TaskSim | None = None
        self._expert: MistakenExpert | None = None
        self._obs: np.ndarray | None = None
        self.task = ""
        self.seed = 0
        self.plan = MistakePlan()
        self.frame: Frame | None = None

    @property
    def joint_names(self) -> tuple[str, ...]:
        return ROBOT_JOINTS

    @property
    def dt(self) -> float:
        """Simulated seconds per frame (MetaWorld: 5 physics steps of 2.5 ms)."""
        sim = self._sim or self._task_sim(self.config.tasks[0])
        return float(sim.env.dt)

    @property
    def done(self) -> bool:
        frame = self.frame
        return frame is not None and (frame.success or frame.index >= self.config.max_steps - 1)

    def prepare(self) -> None:
        """Build every task's environment now (each takes a while) instead of at its first episode."""
        for task in self.config.tasks:
            self._task_sim(task)

    def _task_sim(self, task: str) -> _TaskSim:
        if task not in self._sims:
            if task not in self.config.tasks:
                raise ValueError(f"task {task!r} is not in this world's tasks {self.config.tasks}")
            self._sims[task] = _TaskSim(task, self.config)
        return self._sims[task]

    def reset(self, task: str, seed: int, plan: MistakePlan | None = None) -> Frame:
        """Start episode ``(task, seed)`` and return its first frame. ``plan`` replaces the seed's own
        mistakes (same scene, noise and pauses), e.g. to run an episode again without its fatal mistake."""
        sim = self._task_sim(task)
        self._sim, self.task, self.seed = sim, task, int(seed)
        self.plan = plan_mistakes(task, seed, self.config) if plan is None else plan
        self._expert = MistakenExpert(task, self.plan, seed)
        sim.env.seed(int(seed))
        self._obs, _ = sim.env.reset()
        self.frame = self._capture(0, False)
        return self.frame

    def step(self) -> Frame:
        """Apply the expert's action for one frame period and return the next frame."""
        if self._sim is None or self.frame is None or self._expert is None:
            raise RuntimeError("SimWorld.step() before reset()")
        if self.done:
            raise RuntimeError(f"episode {episode_id(self.task, self.seed)} is over; call reset()")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the experts warn about their own high gains on every step
            action = self._expert.act(self._obs, self.frame.index)
            self._obs, _, _, _, info = self._sim.env.step(action)
        self.frame = self._capture(self.frame.index + 1, bool(info["success"]))
        return self.frame

    def _capture(self, index: int, success: bool) -> Frame:
        sim = self._sim
        data = sim.env.data
        images: dict[str, np.ndarray] = {}
        if sim.renderer is not None:
            for camera in self.config.cameras:
                sim.renderer.update_scene(data, camera=camera)
                images[camera] = sim.renderer.render()
        return Frame(
            index=index, time=index * float(sim.env.dt), images=images,
            position=data.qpos[sim.joint_qpos].astype(np.float64),
            velocity=data.qvel[sim.joint_dof].astype(np.float64), success=success,
        )

    def frames(self, task: str, seed: int, plan: MistakePlan | None = None) -> Iterator[Frame]:
        """All frames of episode ``(task, seed)`` (``plan``: as in :meth:`reset`)."""
        yield self.reset(task, seed, plan)
        while not self.done:
            yield self.step()

    def rollout(self, task: str, seed: int) -> Episode:
        episode = Episode(task, int(seed), TASKS[task].instruction, plan_mistakes(task, seed, self.config))
        episode.frames.extend(self.frames(task, seed))
        episode.release_frame = self.release_frame
        return episode

    @property
    def release_frame(self) -> int | None:
        """In an early-release episode, the frame whose action opened the gripper (None before it or in any
        other episode): the onset of the mistake, known only once the expert has acted on it."""
        return None if self._expert is None else self._expert.release_step

    def close(self) -> None:
        for sim in self._sims.values():
            sim.close()
        self._sims.clear()
        self._sim = None

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
