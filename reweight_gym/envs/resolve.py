"""What a Reweight environment id and its keywords resolve to, without loading any data: for
checking arguments early (``reweight-gym train``, RLlib's config validation) and for recording
what a training run trained on (``agent.json``)."""

from __future__ import annotations

from typing import Any


def resolve_env(env_id: str, env_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resolved config of a single-config Reweight id (``EnvConfig.to_dict()``), or for
    ``Reweight-Instances-v0`` its instance set and the keywords applied to every instance;
    ``None`` for another id. A bad keyword is a ``ValueError`` naming it."""
    from reweight_gym.config import EnvConfig
    from reweight_gym.envs import ENV_IDS, INSTANCES_ENV_ID
    from reweight_gym.envs.instances import load_instance_set

    kwargs = dict(env_kwargs or {})
    if env_id == INSTANCES_ENV_ID:
        from reweight_gym.envs.reweight_env import SET_WIDE_FIELDS

        s = load_instance_set(kwargs.pop("instance_set", "train"))
        kwargs.pop("reference_cache", None)
        bad = sorted(set(kwargs) - set(SET_WIDE_FIELDS))
        if bad:
            raise ValueError(f"invalid keyword(s) {bad} with instance_set: the instances set "
                             f"the run; allowed: {', '.join(SET_WIDE_FIELDS)}")
        s.shared(**{k: v for k, v in kwargs.items() if k != "data_root"})  # validates them
        return {"instance_set": s.to_dict(), "set_wide": kwargs}
    dataset = ENV_IDS.get(env_id)
    if dataset is None:
        return None
    kwargs = {k: v for k, v in kwargs.items() if k not in ("dataset", "reference_cache")}
    return EnvConfig.resolve(dataset, **kwargs).to_dict()


def env_episode_length(env_id: str, env_kwargs: dict[str, Any] | None) -> int | None:
    """Steps per episode of a Reweight id (``num_stages - warmup_stages``), or ``None``."""
    from reweight_gym.envs import INSTANCES_ENV_ID
    from reweight_gym.envs.instances import load_instance_set

    resolved = resolve_env(env_id, env_kwargs)
    if resolved is None:
        return None
    if env_id == INSTANCES_ENV_ID:
        kwargs = dict(env_kwargs or {})
        overrides = {k: v for k, v in kwargs.items()
                     if k not in ("instance_set", "reference_cache", "data_root")}
        shared = load_instance_set(kwargs.get("instance_set", "train")).shared(**overrides)
        return int(shared["num_stages"] - shared["warmup_stages"])
    return int(resolved["num_stages"] - resolved["warmup_stages"])
