"""The agents' settings: the defaults chosen by the evaluation protocol, and LAW's own values.

One home for both, used by SB3's :class:`~reweight_gym.agents.sb3.LAWDDPG`, RLlib's ``DDPGConfig``
and
``reweight-gym train``: a user who trains with the defaults gets the agent that
``benchmarks/agent_learning.py`` measured; ``LAW_DDPG`` is LAW's DDPG, one argument away
(``LAWDDPG("MlpPolicy", env, **LAW_DDPG)``, ``reweight-gym train --settings law``).

The defaults were chosen on the protocol's *validation* episode seeds (``agents/protocol.py``),
never on the evaluation seeds: ``benchmarks/agent_learning.py --steps select`` trains LAW's
DDPG, these defaults, the earlier ones (2 FDU epochs) and the earlier ones with one change
undone (SB3, 250 episodes of the demo's digits run at 40% uniform noise, 2-3 training seeds
each) and ranks them by mean return on the validation episodes; the winner is the default
(``benchmarks/results/agents/selection_uniform/selection.md``, README "Do the agents learn?").
What they change against LAW, each measured against the earlier defaults with it undone:

- learning rates 10x LAW's (actor 1e-4, critic 1e-3), for a search of a few hundred episodes
  (with LAW's rates the validation return is about a third);
- twin critics with target-policy smoothing (TD3's clipped double Q), for stage rewards
  measured on a small validation set (one critic: lower and more seed-dependent return).

LAW's Full Data Update (Algorithm 1) is kept, with 4 epochs over the whole buffer in minibatches
of 64 after every round of episodes (one episode per parallel searcher), starting after 20
episodes of exploration; without it (SB3's one minibatch per step) the return halves. The
paper gives no epoch count: 4 epochs ranked first on the validation episodes, by less than the
spread of the training seeds, over the 2 of the package's earlier defaults.

The names are the keyword arguments of :class:`~reweight_gym.agents.sb3.LAWDDPG` and, under the
same names, the ``.training()`` keys of RLlib's ``DDPGConfig`` (``agents/rllib/ddpg.py``).
"""

from __future__ import annotations

from typing import Any

#: The protocol's choice (see the module docstring): what ``LAWDDPG()`` and
#: ``reweight-gym train`` use unless told otherwise.
DDPG_DEFAULTS: dict[str, Any] = {
    "actor_lr": 1e-4,
    "critic_lr": 1e-3,
    "net_arch": (64, 64, 64),
    "noise_sigma": 0.2,
    "n_critics": 2,
    "target_policy_noise": 0.1,
    "target_noise_clip": 0.5,
    "action_l2": 0.0,
    "full_data_update": True,
    "fdu_epochs": 4,
    "fdu_batch_size": 64,
    "learning_starts_episodes": 20,
    "buffer_size": 20_000,
    "gamma": 0.99,
    "tau": 0.005,
}

#: LAW's DDPG (Li et al., AAAI 2020, Sec. 3.3 and Algorithm 1): 4-layer MLPs, Adam 1e-5 (actor)
#: and 1e-4 (critic), one critic, no target smoothing, FDU. The paper gives no FDU epoch count
#: or minibatch size; these keep the package's earlier values.
LAW_DDPG: dict[str, Any] = {
    **DDPG_DEFAULTS,
    "actor_lr": 1e-5,
    "critic_lr": 1e-4,
    "n_critics": 1,
    "target_policy_noise": 0.0,
    "fdu_epochs": 4,
    "fdu_batch_size": 64,
}
