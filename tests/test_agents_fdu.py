"""LAW's Full Data Update schedule (agents/fdu.py) and the run directory's atomic writes
(agents/runs.py): pure mechanisms, no training."""

from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest

import reweight_gym  # noqa: F401
from reweight_gym.agents.fdu import FDUSchedule, episode_length, visits
from reweight_gym.agents.runs import atomic_dir, atomic_file, remove_stale_temps, write_json_atomic


@pytest.mark.parametrize("n,batch", [(0, 4), (1, 4), (7, 3), (12, 4), (50, 64)])
def test_every_transition_visited_exactly_epochs_times(n: int, batch: int) -> None:
    fdu = FDUSchedule(epochs=3, batch_size=batch, learning_starts_episodes=0, seed=0)
    mbs = list(fdu.minibatches(n))
    assert len(mbs) == fdu.num_minibatches(n) == 3 * -(-n // batch)
    np.testing.assert_array_equal(visits(mbs, n), np.full(n, 3))
    per_epoch = len(mbs) // 3
    for e in range(3):  # each epoch a permutation cut into full minibatches, the last shorter
        epoch = mbs[e * per_epoch:(e + 1) * per_epoch]
        assert sorted(np.concatenate(epoch).tolist() if epoch else []) == list(range(n))
        assert all(len(m) == batch for m in epoch[:-1])


def test_minibatch_order_is_seeded_and_resumable() -> None:
    a = FDUSchedule(2, 5, 0, seed=7)
    b = FDUSchedule(2, 5, 0, seed=7)
    c = FDUSchedule(2, 5, 0, seed=8)
    first_a, first_b = list(a.minibatches(20)), list(b.minibatches(20))
    assert all(np.array_equal(x, y) for x, y in zip(first_a, first_b))
    assert not all(np.array_equal(x, y) for x, y in zip(first_a, list(c.minibatches(20))))
    state = json.loads(json.dumps(a.get_state()))  # checkpointable as JSON
    after_a = list(a.minibatches(20))
    d = FDUSchedule(2, 5, 0, seed=123)
    d.set_state(state)
    assert all(np.array_equal(x, y) for x, y in zip(after_a, list(d.minibatches(20))))


def test_when_updates_happen() -> None:
    fdu = FDUSchedule(2, 64, learning_starts_episodes=20)
    assert fdu.explores_randomly(19) and not fdu.explores_randomly(20)
    assert not fdu.update_due(20) and fdu.update_due(22)
    # SB3: 2 envs on a 10-stage env; train_freq 10 vec steps, learning_starts 200 transitions
    assert fdu.sb3_steps(10) == (10, 200)


def test_schedule_bad_input() -> None:
    with pytest.raises(ValueError, match="invalid fdu_epochs=0"):
        FDUSchedule(0, 64, 0)
    with pytest.raises(ValueError, match="invalid fdu_batch_size=0"):
        FDUSchedule(1, 0, 0)
    with pytest.raises(ValueError, match="invalid learning_starts_episodes=-1"):
        FDUSchedule(1, 1, -1)


def test_episode_length() -> None:
    kw = {"preset": "tiny", "num_stages": 6, "warmup_stages": 2}
    assert episode_length(env_id="Reweight-Digits-v0", env_kwargs=kw) == 4
    env = gym.make("Reweight-Digits-v0", **kw)
    assert episode_length(env) == 4
    assert episode_length(env_id="Pendulum-v1") == 200
    assert episode_length(gym.make("Pendulum-v1")) == 200
    assert episode_length(env_id="Nope-v0") is None


def test_atomic_writes_leave_the_old_file_on_failure(tmp_path) -> None:
    path = str(tmp_path / "final.json")
    write_json_atomic(path, {"steps": 1})
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"steps": 2')  # half written, then the process "dies"
            raise RuntimeError("killed")
    with open(path) as f:
        assert json.load(f) == {"steps": 1}
    assert os.listdir(tmp_path) == ["final.json"]
    ckpt = str(tmp_path / "checkpoint_000001")
    with atomic_dir(ckpt) as d:
        with open(os.path.join(d, "a"), "w") as f:
            f.write("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(ckpt) as d:
            raise RuntimeError("killed")
    assert os.listdir(ckpt) == ["a"]
    # what a SIGKILL leaves behind (no finally ran) is removed on restart
    os.makedirs(tmp_path / ".tmp-123-checkpoint_000002")
    (tmp_path / ".tmp-123-law_ddpg_8_steps.zip").write_text("partial")
    assert remove_stale_temps(str(tmp_path)) == [".tmp-123-checkpoint_000002",
                                                 ".tmp-123-law_ddpg_8_steps.zip"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_000001", "final.json"]
