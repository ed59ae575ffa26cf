"""Sessions and events in the style of eventsim, rendered as the feed's JSON lines.

A day is simulated as a sorted list of session starts (hour-of-day and weekday rhythm).
Each session is planned whole when it starts (its pages, gaps and lines) and its events go
into hourly buckets. Because sessions are planned in start order, a bucket is complete once
a session starts after its hour; it is then sorted by ts (stable, so ties keep session and
item order) and written. Only the events of running sessions are held in memory. Sessions
running past midnight continue into the next day's file; sessions still running when the
period ends are cut there.

Lines are built with f-strings from per-user JSON fragments (a user's fixed fields are
encoded once) and per-song spellings encoded once, which keeps the hot loop cheap.
"""

from __future__ import annotations

import json
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter

from sparkify.generator.catalogue import (
    VARIANTS,
    Catalogue,
    PlayForm,
    Song,
    exact_form,
    hidden_form,
    near_miss_form,
    near_miss_kind,
)
from sparkify.generator.users import MS_OFFSET, User

# Event kinds, used by the writer for counting. Song plays are KIND_SONG + variant index.
KIND_OTHER = 0
KIND_LOGGED_OUT = 1
KIND_UPGRADE = 2
KIND_DOWNGRADE = 3
KIND_SONG = 4
N_KINDS = KIND_SONG + len(VARIANTS)

# One line of output: (ts in ms, JSON line, truth tail or None, kind).
# The truth tail is "ts,user_id,session_id,item_in_session,song_id,artist_id,variant".
Event = tuple[int, str, str | None, int]

# Relative session starts per UTC hour: quiet at night, peaking late afternoon.
HOUR_WEIGHTS: tuple[float, ...] = (
    4.6, 4.8, 3.9, 3.3, 3.8, 4.9, 5.4, 5.4, 6.0, 7.4, 8.6, 9.4,
    9.0, 10.1, 12.0, 13.9, 15.0, 14.0, 13.8, 10.6, 9.6, 8.0, 6.2, 5.5,
)  # fmt: skip
# Monday .. Sunday: weekends are quieter.
WEEKDAY_WEIGHTS: tuple[float, ...] = (1.1, 1.1, 1.2, 1.1, 1.15, 0.7, 0.55)

# Logged-in page weights per level. The rest of the navigation is scripted below.
_FREE_PAGES: tuple[tuple[str, float], ...] = (
    ("NextSong", 0.80),
    ("Home", 0.11),
    ("Upgrade", 0.03),
    ("Logout", 0.02),
    ("Settings", 0.012),
    ("Help", 0.01),
    ("About", 0.007),
    ("Error", 0.003),
)
_PAID_PAGES: tuple[tuple[str, float], ...] = (
    ("NextSong", 0.905),
    ("Home", 0.044),
    ("Downgrade", 0.013),
    ("Logout", 0.012),
    ("Settings", 0.0095),
    ("Help", 0.0075),
    ("About", 0.004),
    ("Error", 0.0012),
)
PAGE_METHOD_STATUS: dict[str, tuple[str, int]] = {
    "NextSong": ("PUT", 200),
    "Home": ("GET", 200),
    "Login": ("PUT", 307),
    "Logout": ("PUT", 307),
    "Downgrade": ("GET", 200),
    "Settings": ("GET", 200),
    "Help": ("GET", 200),
    "About": ("GET", 200),
    "Upgrade": ("GET", 200),
    "Save Settings": ("PUT", 307),
    "Error": ("GET", 404),
    "Submit Upgrade": ("PUT", 307),
    "Submit Downgrade": ("PUT", 307),
}

P_START_LOGGED_OUT = 0.09  # session opens on the logged-out home page
P_LOGIN_AFTER_VISIT = 0.7  # ... and the visitor logs in (otherwise a guest visit)
P_LOGIN_AFTER_LOGOUT = 0.45  # after Logout, log in again within the session
P_SUBMIT_UPGRADE = 0.35  # Upgrade page -> Submit Upgrade
P_SUBMIT_DOWNGRADE = 0.06  # Downgrade page -> Submit Downgrade
P_SAVE_SETTINGS = 0.2  # Settings page -> Save Settings
SESSION_MU, SESSION_SIGMA, SESSION_MAX = 1.35, 1.25, 400  # logged-in actions per session
# Measured mean of events per session for the parameters above (see docs/generator.md);
# turns --events-per-day into a number of sessions.
MEAN_EVENTS_PER_SESSION = 8.25
MAX_USER_TRIES = 8  # a session whose user is still busy re-draws this many times
BUCKET_MS = 3_600_000  # planned events wait in hourly buckets until no session can add more
_by_ts = itemgetter(0)


def json_string(text: str) -> str:
    """A JSON string literal as the feed writes it: ASCII with \\u escapes, "/" as "\\/"."""
    return json.dumps(text).replace("/", "\\/")


@dataclass(frozen=True, slots=True)
class UserFragments:
    """A user's fixed JSON between the varying fields of a logged-in line.

    A line is ``{"artist":A`` + head + item + last + length + ``,"level":"L"`` + loc
    + method + ``","page":"P"`` + reg + sessionId + ``,"song":S,"status":N,"ts":T`` + tail.
    ``song_free``/``song_paid`` join level to reg for NextSong lines (the hot path).
    """

    head: str
    last: str
    loc: str
    reg: str
    tail: str
    song_free: str
    song_paid: str


def user_fragments(user: User) -> UserFragments:
    head = (
        f',"auth":"Logged In","firstName":{json_string(user.first_name)}'
        f',"gender":{json_string(user.gender)},"itemInSession":'
    )
    last = f',"lastName":{json_string(user.last_name)},"length":'
    loc = f',"location":{json_string(user.location)},"method":"'
    reg = f',"registration":{user.registration!r},"sessionId":'
    tail = f',"userAgent":{json_string(user.user_agent)},"userId":{json_string(user.user_id)}}}'
    return UserFragments(
        head=head,
        last=last,
        loc=loc,
        reg=reg,
        tail=tail,
        song_free=f',"level":"free"{loc}PUT","page":"NextSong"{reg}',
        song_paid=f',"level":"paid"{loc}PUT","page":"NextSong"{reg}',
    )


def page_line(f: UserFragments, page: str, item: int, level: str, sid: int, ts: int) -> str:
    """A logged-in line for any page but NextSong (artist, song and length are null)."""
    method, status = PAGE_METHOD_STATUS[page]
    return (
        f'{{"artist":null{f.head}{item}{f.last}null,"level":"{level}"{f.loc}{method}'
        f'","page":"{page}"{f.reg}{sid},"song":null,"status":{status},"ts":{ts}{f.tail}'
    )


def logged_out_line(page: str, item: int, level: str, sid: int, ts: int) -> str:
    """A logged-out line: userId "", personal fields null, level still set."""
    method, status = PAGE_METHOD_STATUS[page]
    return (
        '{"artist":null,"auth":"Logged Out","firstName":null,"gender":null,'
        f'"itemInSession":{item},"lastName":null,"length":null,"level":"{level}",'
        f'"location":null,"method":"{method}","page":"{page}","registration":null,'
        f'"sessionId":{sid},"song":null,"status":{status},"ts":{ts},"userAgent":null,"userId":""}}'
    )


# (artist JSON, song JSON, length JSON, length seconds, truth tail, kind)
_Rendered = tuple[str, str, str, float, str, int]


def _render(song: Song, form: PlayForm, in_catalogue: bool) -> _Rendered:
    tail = (
        f"{song.song_id},{song.artist.artist_id},{form.variant}"
        if in_catalogue
        else ",,not_in_catalogue"
    )
    return (
        json_string(form.artist),
        json_string(form.title),
        repr(form.length),
        form.length,
        tail,
        KIND_SONG + VARIANTS.index(form.variant),
    )


def _zipf_cumulative(n: int, rng: random.Random, exponent: float = 0.9) -> list[float]:
    """Cumulative popularity weights over ``n`` songs in a random popularity order."""
    ranks = list(range(n))
    rng.shuffle(ranks)
    return list(accumulate(1.0 / (r + 5) ** exponent for r in ranks))


def _guarded(cum: list[float]) -> tuple[list[float], float]:
    """(cumulative weights with the last one infinite, total): ``bisect(c, random() * total)``
    then always lands on a valid index, even when the product rounds up to the total."""
    if not cum:
        return [float("inf")], 0.0
    return [*cum[:-1], float("inf")], cum[-1]


def _page_table(pairs: Sequence[tuple[str, float]]) -> tuple[float, list[str], list[float]]:
    """(probability of NextSong, the other pages, their guarded cumulative probabilities)."""
    total = sum(w for _, w in pairs)
    p_song = sum(w for name, w in pairs if name == "NextSong") / total
    others = [(name, w) for name, w in pairs if name != "NextSong"]
    cum, _ = _guarded(list(accumulate(w for _, w in others)))
    other_total = sum(w for _, w in others)
    return p_song, [name for name, _ in others], [c / other_total for c in cum]


@dataclass(slots=True)
class SimulationStats:
    sessions: int = 0
    skipped_sessions: int = 0  # every candidate user was still in a session


class EventSimulator:
    """Generates the events of consecutive days; call :meth:`day_events` for day 0, 1, ..."""

    def __init__(
        self,
        users: Sequence[User],
        catalogue: Catalogue,
        *,
        start_s: int,
        days: int,
        events_per_day: float,
        match_share: float,
        near_miss_share: float,
        seed: int,
    ) -> None:
        if not 0.0 <= match_share <= 1.0 or not 0.0 <= near_miss_share <= 1.0:
            raise ValueError("shares must be between 0 and 1")
        self._rng = random.Random(f"{seed}:events")
        form_rng = random.Random(f"{seed}:forms")
        self._start_s = start_s
        self._days = days
        self._end_ms = (start_s + days * 86_400) * 1000
        self._events_per_day = events_per_day
        self._match = match_share
        self._near = near_miss_share

        self._uids = [u.user_id for u in users]
        self._frags = [user_fragments(u) for u in users]
        self._level = [u.initial_level for u in users]
        self._busy = [0] * len(users)  # last second of each user's latest session
        self._user_cum, self._user_total = _guarded(list(accumulate(u.activity for u in users)))
        self.users_seen: set[int] = set()
        self.level_change_users: set[str] = set()
        self._pending_changes: list[tuple[int, int]] = []  # (ts, user index) of Submit events

        songs = catalogue.songs
        self._exact = [_render(s, exact_form(s), True) for s in songs]
        self._near_forms = [
            _render(s, near_miss_form(s, near_miss_kind(s, form_rng), form_rng), True)
            for s in songs
        ]
        self._hidden = [_render(s, hidden_form(s, form_rng), False) for s in catalogue.hidden]
        self._cat_cum, self._cat_total = _guarded(_zipf_cumulative(len(songs), form_rng))
        self._hid_cum, self._hid_total = _guarded(_zipf_cumulative(len(self._hidden), form_rng))
        if not self._hidden:
            self._match = 1.0

        self._pages = {"free": _page_table(_FREE_PAGES), "paid": _page_table(_PAID_PAGES)}
        self._hour_cum, self._hour_total = _guarded(list(accumulate(HOUR_WEIGHTS)))
        week_mean = sum(WEEKDAY_WEIGHTS) / 7
        self._weekday = [w / week_mean for w in WEEKDAY_WEIGHTS]
        # Planned events waiting to be written, by hour (ts // BUCKET_MS).
        self._buckets: dict[int, list[Event]] = {}
        self._next_flush = start_s * 1000 // BUCKET_MS
        self._next_session = 1
        self._next_day = 0
        self.stats = SimulationStats()

    # --- days -------------------------------------------------------------------------

    def _session_starts(self, day_index: int, day_start: int) -> list[int]:
        rng = self._rng
        weekday = (day_start // 86_400 + 3) % 7  # 1970-01-01 was a Thursday
        expected = self._events_per_day * self._weekday[weekday] * rng.lognormvariate(0, 0.2)
        n = max(0, round(expected / MEAN_EVENTS_PER_SESSION))
        total = self._hour_total
        hour_cum = self._hour_cum
        rnd = rng.random
        starts = [
            day_start + bisect(hour_cum, rnd() * total) * 3600 + int(rnd() * 3600) for _ in range(n)
        ]
        starts.sort()
        return starts

    def _pick_user(self, start: int) -> int | None:
        rnd = self._rng.random
        cum = self._user_cum
        total = self._user_total
        for _ in range(MAX_USER_TRIES):
            u = bisect(cum, rnd() * total)
            if self._busy[u] < start:
                return u
        return None

    def _file_session(self, evs: list[Event]) -> None:
        """Put a planned session's events into the buckets of their hours."""
        buckets = self._buckets
        first = evs[0][0] // BUCKET_MS
        if evs[-1][0] // BUCKET_MS == first:
            bucket = buckets.get(first)
            if bucket is None:
                buckets[first] = evs
            else:
                bucket.extend(evs)
            return
        for ev in evs:
            key = ev[0] // BUCKET_MS
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [ev]
            else:
                bucket.append(ev)

    def _flush_before(self, bucket_index: int) -> Iterator[Event]:
        """Events of all buckets before ``bucket_index``: no session yet to be planned can
        add to them, since sessions are planned in start order."""
        buckets = self._buckets
        while self._next_flush < bucket_index:
            bucket = buckets.pop(self._next_flush, None)
            self._next_flush += 1
            if bucket:
                bucket.sort(key=_by_ts)  # stable: equal ts stay in session, then item order
                yield from bucket

    def day_events(self, day_index: int) -> Iterator[Event]:
        """Events with ts in day ``day_index`` (UTC), in timestamp order."""
        if day_index != self._next_day:
            raise ValueError("days must be generated in order")
        self._next_day += 1
        day_start = self._start_s + day_index * 86_400
        day_end_ms = (day_start + 86_400) * 1000

        for start in self._session_starts(day_index, day_start):
            yield from self._flush_before(start * 1000 // BUCKET_MS)
            u = self._pick_user(start)
            if u is None:
                self.stats.skipped_sessions += 1
                continue
            sid = self._next_session
            self._next_session += 1
            self._file_session(self._plan_session(u, start, sid))
        yield from self._flush_before(day_end_ms // BUCKET_MS)

        if self._next_day == self._days:
            self._buckets.clear()  # the period is over: sessions still running are cut here
        # Submit events written by now (later ones are still in running sessions or cut).
        self.level_change_users.update(
            self._uids[u] for ts, u in self._pending_changes if ts < day_end_ms
        )
        self._pending_changes = [(ts, u) for ts, u in self._pending_changes if ts >= day_end_ms]

    # --- sessions ---------------------------------------------------------------------

    def _plan_session(self, u: int, start: int, sid: int) -> list[Event]:
        """All events of one session of user ``u`` starting at second ``start``."""
        rng = self._rng
        rnd = rng.random
        expo = rng.expovariate
        self.stats.sessions += 1
        self.users_seen.add(u)

        level = self._level[u]
        frags = self._frags[u]
        uid = self._uids[u]
        out: list[Event] = []
        append = out.append
        t = start
        item = 0

        def logged_out(page: str) -> None:
            nonlocal item
            ts = t * 1000 + MS_OFFSET
            append((ts, logged_out_line(page, item, level, sid, ts), None, KIND_LOGGED_OUT))
            item += 1

        def logged_in(page: str, kind: int = KIND_OTHER) -> None:
            nonlocal item
            ts = t * 1000 + MS_OFFSET
            append((ts, page_line(frags, page, item, level, sid, ts), None, kind))
            item += 1

        # A visit may open logged out: home page (sometimes About/Help), then Login.
        if rnd() < P_START_LOGGED_OUT:
            logged_out("Home")
            if rnd() < 0.15:
                t += 1 + int(expo(1 / 40))
                logged_out("About" if rnd() < 0.6 else "Help")
            if rnd() >= P_LOGIN_AFTER_VISIT:
                self._busy[u] = t
                return out  # a guest visit: nobody logs in
            t += 1
            logged_out("Login")
            t += 1 + int(expo(1 / 30))
            logged_in("Home")

        match, near = self._match, self._near
        exact, near_forms, hidden = self._exact, self._near_forms, self._hidden
        cat_cum, hid_cum = self._cat_cum, self._hid_cum
        cat_total, hid_total = self._cat_total, self._hid_total
        p_song, names, cum = self._pages[level]
        head, last, tail_json = frags.head, frags.last, frags.tail
        mid = frags.song_paid if level == "paid" else frags.song_free

        playing = 0.0  # length of the song currently playing, 0 when none
        actions = min(int(rng.lognormvariate(SESSION_MU, SESSION_SIGMA)) + 1, SESSION_MAX)
        while actions > 0:
            actions -= 1
            if rnd() < p_song:  # NextSong: the hot path, inlined
                t += int(playing) if playing else 1 + int(expo(1 / 60))
                if rnd() < match:
                    i = bisect(cat_cum, rnd() * cat_total)
                    artist, song, length_s, playing, tail, kind = (
                        near_forms[i] if rnd() < near else exact[i]
                    )
                else:
                    i = bisect(hid_cum, rnd() * hid_total)
                    artist, song, length_s, playing, tail, kind = hidden[i]
                ts = t * 1000 + MS_OFFSET
                append(
                    (
                        ts,
                        f'{{"artist":{artist}{head}{item}{last}{length_s}{mid}{sid}'
                        f',"song":{song},"status":200,"ts":{ts}{tail_json}',
                        f"{ts},{uid},{sid},{item},{tail}",
                        kind,
                    )
                )
                item += 1
                continue

            # Any other page: clicked while a song plays, or after a pause.
            page = names[bisect(cum, rnd())]
            t += int(playing * rnd()) if playing else 1 + int(expo(1 / 60))
            playing = 0.0
            logged_in(page)
            if page == "Upgrade" and rnd() < P_SUBMIT_UPGRADE:
                t += 1 + int(expo(1 / 20))
                logged_in("Submit Upgrade", KIND_UPGRADE)
                self._pending_changes.append((t * 1000 + MS_OFFSET, u))
                level = "paid"  # from the next event on
                p_song, names, cum = self._pages[level]
                mid = frags.song_paid
                t += 1 + int(expo(1 / 15))
                logged_in("Home")
            elif page == "Downgrade" and rnd() < P_SUBMIT_DOWNGRADE:
                t += 1 + int(expo(1 / 20))
                logged_in("Submit Downgrade", KIND_DOWNGRADE)
                self._pending_changes.append((t * 1000 + MS_OFFSET, u))
                level = "free"
                p_song, names, cum = self._pages[level]
                mid = frags.song_free
                t += 1 + int(expo(1 / 15))
                logged_in("Home")
            elif page == "Settings" and rnd() < P_SAVE_SETTINGS:
                t += 1 + int(expo(1 / 20))
                logged_in("Save Settings")
            elif page == "Logout":
                t += int(expo(1 / 30))
                logged_out("Home")
                if rnd() >= P_LOGIN_AFTER_LOGOUT:
                    break
                t += 1
                logged_out("Login")
                t += 1 + int(expo(1 / 30))
                logged_in("Home")

        self._level[u] = level
        self._busy[u] = t + int(playing)
        return out
