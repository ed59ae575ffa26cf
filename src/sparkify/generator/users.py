"""Simulated listeners with stable attributes (name, gender, location, agent, registration)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sparkify.generator import vocab

# eventsim writes whole seconds plus a constant millisecond offset; the feed's ts and
# registration values all end in the same three digits. We keep that quirk.
MS_OFFSET = 796


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    first_name: str
    last_name: str
    gender: str
    location: str
    registration: float  # epoch milliseconds, a float like the feed (1540919166796.0)
    user_agent: str
    activity: float  # relative share of sessions; heavy-tailed across users
    initial_level: str  # "free" or "paid" at the start of the period


def make_users(n: int, rng: random.Random, period_start_s: int) -> list[User]:
    """``n`` users with ids "1".."n"; heavier listeners are more often paid."""
    if n < 1:
        raise ValueError("at least one user is needed")
    locations = [loc for loc, _ in vocab.LOCATIONS]
    location_weights = [w for _, w in vocab.LOCATIONS]
    agents = [ua for ua, _ in vocab.USER_AGENTS]
    agent_weights = [w for _, w in vocab.USER_AGENTS]

    drafts = []
    for i in range(1, n + 1):
        gender = "F" if rng.random() < 0.55 else "M"
        first = rng.choice(vocab.FEMALE_FIRST_NAMES if gender == "F" else vocab.MALE_FIRST_NAMES)
        last = rng.choice(vocab.LAST_NAMES)
        location = rng.choices(locations, weights=location_weights)[0]
        agent = rng.choices(agents, weights=agent_weights)[0]
        registered_s = period_start_s - int(rng.uniform(0.3, 45.0) * 86_400)
        activity = min(rng.paretovariate(1.3), 40.0)
        drafts.append((str(i), first, last, gender, location, registered_s, agent, activity))

    # Rank by activity (ties broken by id) so the paid share grows with listening.
    order = sorted(range(n), key=lambda k: (drafts[k][7], k))
    quantile = {k: rank / max(n - 1, 1) for rank, k in enumerate(order)}
    users = []
    for k, (uid, first, last, gender, location, reg_s, agent, activity) in enumerate(drafts):
        level = "paid" if rng.random() < 0.25 + 0.5 * quantile[k] else "free"
        users.append(
            User(
                user_id=uid,
                first_name=first,
                last_name=last,
                gender=gender,
                location=location,
                registration=float(reg_s * 1000 + MS_OFFSET),
                user_agent=agent,
                activity=activity,
                initial_level=level,
            )
        )
    return users
