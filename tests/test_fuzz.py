"""Property-based tests (hypothesis) of every ``EnvConfig`` field and of the command line's JSON
arguments: any value gives a working environment (reset and every step of the episode, finite
rewards, observations in the space) or a ``ValueError`` that names the field; never another
exception, a hang or a crash in a later step.

"Any value" is any JSON-like value of any type: None, booleans, integers of any size, floats
including NaN and infinities, strings (with NUL characters), lists and dicts. One exception: an
integer that sets the amount of work (``epochs``) is bounded, so that a valid value runs in
seconds; huge network sizes are a legitimate request on a bigger machine and are not fuzzed.
Every test is deterministic (``derandomize=True``: the same examples on every run) with a
bounded number of examples; the ``slow`` ones draw more.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reweight_gym  # noqa: F401  (registration)
from reweight_gym.benchmark import build_specs
from reweight_gym.cli import main
from reweight_gym.config import (
    DATASETS,
    FEATURE_SETS,
    IMBALANCE_TYPES,
    LR_SCHEDULES,
    NOISE_TYPES,
    OBS_MODES,
    PRESET_NAMES,
    EnvConfig,
)
from reweight_gym.models import MODEL_NAMES
from reweight_gym.runner import RunResult, run

FIELDS = tuple(f.name for f in dataclasses.fields(EnvConfig))
# small runs: a valid example trains in well under a second
BASE = {"epochs": 2, "num_stages": 2, "train_size": 100, "test_size": 50}
MAX_EPOCHS = 8


def _settings(n: int) -> Any:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-3, 3), st.text(max_size=6),
)
WORDS = st.sampled_from(
    ["", "\x00", "cpu", "cuda", "cuda:0", "cuda:x", "mps", "auto", "/nonexistent", "."]
    + list(DATASETS + NOISE_TYPES + IMBALANCE_TYPES + LR_SCHEDULES + FEATURE_SETS + OBS_MODES
           + PRESET_NAMES + MODEL_NAMES))
ANY = st.one_of(
    SCALARS, WORDS,
    st.lists(st.one_of(st.floats(-2, 2), st.integers(-2, 5), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=2),
    # model keywords of the registered models, with sizes a CPU trains in seconds
    st.dictionaries(st.sampled_from(["hidden", "width", "depth", "dropout", "widen"]),
                    st.one_of(st.integers(-3, 64), st.lists(st.integers(-2, 64), max_size=2),
                              st.floats(-1, 2)), max_size=2),
)


CHOICES: dict[str, tuple[Any, ...]] = {
    "dataset": DATASETS, "preset": PRESET_NAMES, "noise_type": NOISE_TYPES,
    "imbalance_type": IMBALANCE_TYPES, "lr_schedule": LR_SCHEDULES, "features": FEATURE_SETS,
    "obs_mode": OBS_MODES, "model": ("mlp", "small_cnn"), "device": ("cpu", "auto", "cuda", "mps"),
    "data_root": (None, "", "/nonexistent", "."), "cache_dir": (None, "", "\x00", "."),
}
DEFAULTS = EnvConfig()  # the dataclass defaults (not validated): their types guide the values


def _plausible(name: str) -> st.SearchStrategy[Any]:
    """Values near what the field allows: its choices, small integers and fractions around its
    bounds, so that many examples make a working environment."""
    default = getattr(DEFAULTS, name)
    if name in CHOICES:
        return st.sampled_from(CHOICES[name])
    if isinstance(default, bool):
        return st.booleans()
    if name == "model_kwargs":
        return st.dictionaries(st.just("hidden"), st.lists(st.integers(0, 32), max_size=2),
                               max_size=1)
    if name == "lr_milestones":
        return st.lists(st.floats(-0.2, 1.2), max_size=3)
    if isinstance(default, int) or default is None:  # counts, sizes, seeds, optional numbers
        return st.one_of(st.integers(-1, 12), st.integers(-1, 1000), st.none())
    return st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 1e-9, 50.0, 1e30]))


def _value(name: str) -> st.SearchStrategy[Any]:
    """Any value for the field ``name``, plausible ones drawn as often as the rest (``epochs``
    bounded when it is a valid integer)."""
    values = st.one_of(_plausible(name), _plausible(name), ANY)
    if name == "epochs":
        return values.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool)
                                            and v > MAX_EPOCHS))
    return values


def _fields(min_size: int, max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    """Several fields at once, mostly with plausible values (an invalid one ends the check at
    once, so the interactions of valid values are what combinations exercise)."""
    def values(name: str) -> st.SearchStrategy[Any]:
        return st.one_of(*[_plausible(name)] * 4, _value(name))

    return st.lists(st.sampled_from(FIELDS), min_size=min_size, max_size=max_size,
                    unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: values(n) for n in names})).filter(
        lambda d: not (isinstance(d.get("epochs"), int) and not isinstance(d.get("epochs"), bool)
                       and d["epochs"] > MAX_EPOCHS))


def _message_names(message: str, kwargs: dict[str, Any]) -> bool:
    """The error names one of the fields given."""
    return any(k in message for k in kwargs)


def _check_env(kwargs: dict[str, Any]) -> None:
    """Either ``gym.make`` raises a ValueError naming a given field, or the whole episode runs
    with finite rewards and observations inside the observation space."""
    try:
        env = gym.make("Reweight-Digits-v0", **kwargs)
    except ValueError as e:
        assert _message_names(str(e), kwargs), (kwargs, str(e))
        return
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs), obs
        rng = np.random.default_rng(0)
        done, steps = False, 0
        while not done:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            assert math.isfinite(reward)
            assert env.observation_space.contains(obs), obs
            done = terminated or truncated
            steps += 1
        assert steps <= env.unwrapped.config.num_stages
    finally:
        env.close()


@_settings(150)
@given(data=st.data())
def test_any_value_of_any_field_gives_a_working_env_or_names_the_field(data: Any) -> None:
    name = data.draw(st.sampled_from(FIELDS), label="field")
    _check_env({**BASE, name: data.draw(_value(name), label=name)})


@pytest.mark.slow
@pytest.mark.parametrize("name", FIELDS)
def test_every_field_fuzzed(name: str) -> None:
    @_settings(100)
    @given(value=_value(name))
    def check(value: Any) -> None:
        _check_env({**BASE, name: value})

    check()


@pytest.mark.slow
@_settings(1000)
@given(fields=_fields(2, 5))
def test_combinations_of_fields(fields: dict[str, Any]) -> None:
    _check_env({**BASE, **fields})


# ---------------------------------------------------------------------- the CLI's JSON arguments
JSON_TEXT = st.one_of(
    st.text(max_size=12),  # mostly not JSON
    st.builds(json.dumps, st.one_of(SCALARS, st.lists(SCALARS, max_size=2))),  # JSON, no object
    st.builds(lambda d: json.dumps({**BASE, **d}), _fields(0, 2)),  # objects of env keywords
    st.just('{"bogus": 1}'),
)


def _one_line_or_success(rc: int, err: str, command: str) -> None:
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"reweight-gym {command}: error: "), err
        assert "Traceback" not in err


@_settings(40)
@given(text=JSON_TEXT)
def test_episode_env_kwargs(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rc = main(["episode", f"--env-kwargs={text}", "--policy", "random"])
    _one_line_or_success(rc, capsys.readouterr().err, "episode")


METHODS = ["uniform", "focal", "spl", "mwnet", "fsr", "nrt", "easy_first"]


def _method_keywords(method: str) -> st.SearchStrategy[dict[str, Any]]:
    """Keywords of ``method`` (its own names and a wrong one) with plausible or any values."""
    from reweight_gym.baselines import method_kwarg_names

    names = (("strength", "seed") if method == "easy_first" else method_kwarg_names(method))
    plausible = st.one_of(st.floats(1e-4, 1), st.floats(0, 2), st.integers(1, 6), st.booleans(),
                          st.sampled_from(["auto", "noise", "long_tail", "finite_difference",
                                           "forward_ad", "clip", "clip_code", "schedule"]))
    keys = st.one_of(*[st.sampled_from(names)] * 6, st.just("bogus"))
    return st.dictionaries(keys, st.one_of(plausible, plausible, plausible, ANY), max_size=2)


METHOD_KWARGS = st.one_of(
    st.text(max_size=12),
    st.builds(json.dumps, st.one_of(SCALARS, st.dictionaries(
        st.sampled_from(["mwnet", "focal", "easy_first", "gdw", "nope"]), ANY, max_size=2))),
    *[st.builds(json.dumps, st.lists(st.sampled_from(METHODS[1:]), max_size=2,
                                     unique=True).flatmap(
        lambda ms: st.fixed_dictionaries({m: _method_keywords(m) for m in ms})))] * 4,
)


@pytest.fixture(scope="module")
def uniform_row() -> RunResult:
    """The uniform reference row of the fuzzed benchmark's one setting and seed."""
    specs = build_specs("digits", "uniform-noise", ["uniform"], 1, "tiny",
                        settings=["noise_rate=0.4"], env_overrides=BASE)
    return run(specs[0])


@_settings(60)
@given(text=METHOD_KWARGS)
def test_benchmark_method_kwargs(text: str, uniform_row: RunResult) -> None:
    """``--method-kwargs``: rejected before anything trains with a ValueError naming the
    option, the method or the keyword, or every run of the benchmark works."""
    from reweight_gym.validation import parse_json_object

    try:
        kwargs = parse_json_object(text, "--method-kwargs")
        specs = build_specs("digits", "uniform-noise", METHODS, 1, "tiny",
                            settings=["noise_rate=0.4"], env_overrides=BASE,
                            method_kwargs=kwargs)
    except ValueError as e:
        message = str(e)
        assert "--method-kwargs" in message or "kwarg" in message or \
            any(f"invalid {k}=" in message for k in ("strength", "gamma")), message
        return
    for spec in specs:
        if spec.method_kwargs:
            result = run(spec, uniform_row)
            assert len(result.stage_rewards) == BASE["num_stages"] or result.diverged


@pytest.mark.slow
@_settings(30)
@given(text=JSON_TEXT)
def test_benchmark_env_kwargs_on_the_command_line(text: str, tmp_path_factory: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out: Path = tmp_path_factory.mktemp("bench")
    capsys.readouterr()
    rc = main(["benchmark", "--methods", "uniform", "--seeds", "1", "--settings",
               "noise_rate=0.4", f"--env-kwargs={text}", "--out", str(out), "--no-isolate",
               "--quiet", "--no-report"])
    _one_line_or_success(rc, capsys.readouterr().err, "benchmark")


# LAWDDPG's keywords (agents/sb3/ddpg.py) and SB3's, and a wrong one
AGENT_KEYWORDS = ("actor_lr", "critic_lr", "net_arch", "noise_sigma", "n_critics",
                  "target_policy_noise", "target_noise_clip", "action_l2", "full_data_update",
                  "fdu_epochs", "fdu_batch_size", "learning_starts_episodes", "buffer_size",
                  "learning_starts", "batch_size", "tau", "gamma", "train_freq",
                  "gradient_steps", "policy_kwargs", "seed", "bogus")
AGENT_VALUES = st.one_of(st.floats(1e-4, 1), st.integers(1, 64), st.booleans(),
                         st.lists(st.integers(1, 16), max_size=2))


@pytest.mark.slow
@_settings(40)
@given(kwargs=st.dictionaries(st.sampled_from(AGENT_KEYWORDS),
                              st.one_of(AGENT_VALUES, AGENT_VALUES, ANY), max_size=2).filter(
    # a replay buffer's size is memory, like a network's: not fuzzed beyond what a CPU holds
    lambda d: not (isinstance(d.get("buffer_size"), int) and d["buffer_size"] > 10**6)))
def test_train_agent_kwargs(kwargs: dict[str, Any], tmp_path_factory: Any,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """``train --agent-kwargs``: the agent trains, or the command exits with status 2 and one
    line on stderr; nothing escapes as an exception or a traceback."""
    out: Path = tmp_path_factory.mktemp("train")
    capsys.readouterr()
    # 2 episodes learn only with an early start (else train refuses, naming the budget)
    kwargs = {"learning_starts_episodes": 0, **kwargs}
    rc = main(["train", "--env-kwargs", json.dumps(BASE), f"--agent-kwargs={json.dumps(kwargs)}",
               "--n-envs", "1", "--episodes", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert any(k in err for k in kwargs), err  # the line names the keyword at fault
