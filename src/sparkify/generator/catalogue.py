"""Artists and songs: the written catalogue, the hidden universe, and near-miss spellings.

The written catalogue becomes ``song_data/``; the hidden universe holds songs that are
played in the logs but never written (as in the real feed, where almost no play matches a
song file). Every song has a unique (title, artist name) pair and a unique duration, so an
exact (song, artist, length) match in the logs identifies one song and a near miss can never
match another song exactly.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sparkify.generator import vocab

VARIANTS: tuple[str, ...] = (
    "exact",
    "case",
    "whitespace",
    "duration_rounding",
    "mojibake",
    "not_in_catalogue",
)
NEAR_MISS_VARIANTS: tuple[str, ...] = ("case", "whitespace", "duration_rounding", "mojibake")

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UPPER_DIGITS = _UPPER + "0123456789"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Artist:
    artist_id: str
    name: str
    location: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True, slots=True)
class Song:
    song_id: str
    track_id: str
    title: str
    artist: Artist
    duration: float
    year: int


@dataclass(frozen=True, slots=True)
class PlayForm:
    """How one play of a song is spelled in the log: artist, song and length fields."""

    variant: str
    artist: str
    title: str
    length: float


@dataclass(frozen=True, slots=True)
class Catalogue:
    songs: tuple[Song, ...]  # written to song_data/, sorted by track id
    hidden: tuple[Song, ...]  # played but never written
    artists: tuple[Artist, ...]  # artists of the written songs, sorted by id


# --- text helpers ---------------------------------------------------------------------


def mojibake(text: str) -> str:
    """Encode ``text`` as UTF-8 twice, the way the feed mangles names.

    "Désir" becomes "DÃ\\x83Â©sir" (JSON: ``"D\\u00c3\\u0083\\u00c2\\u00a9sir"``).
    """
    return text.encode("utf-8").decode("latin-1").encode("utf-8").decode("latin-1")


def repair_mojibake(text: str) -> str:
    """Undo :func:`mojibake` (and single-level mojibake); leaves clean text unchanged."""
    for _ in range(3):
        try:
            fixed = text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
        if fixed == text:
            return text
        text = fixed
    return text


def is_ascii(text: str) -> bool:
    return text.isascii()


# --- ids ------------------------------------------------------------------------------


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _hex(rng: random.Random, n: int) -> str:
    """``n`` upper-case hex digits (one draw, much cheaper than picking each digit)."""
    return f"{rng.getrandbits(4 * n):0{n}X}"


def _artist_id(rng: random.Random) -> str:
    middle = "1187" if rng.random() < 0.8 else _pick(rng, _UPPER_DIGITS, 4)
    return "AR" + _pick(rng, _UPPER_DIGITS, 5) + middle + _hex(rng, 7)


def _song_id(rng: random.Random) -> str:
    return "SO" + _pick(rng, _UPPER, 5) + "12A" + _hex(rng, 8)


def _track_id(rng: random.Random) -> str:
    return "TR" + _pick(rng, _UPPER, 5) + "12" + _hex(rng, 9)


class _Unique(Generic[T]):
    """Draws values from ``make`` until one is new."""

    def __init__(self) -> None:
        self.seen: set[T] = set()

    def take(self, make: Callable[[random.Random], T], rng: random.Random) -> T:
        while True:
            value = make(rng)
            if value not in self.seen:
                self.seen.add(value)
                return value


# --- names ----------------------------------------------------------------------------


def _invented(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(vocab.SYLLABLES) for _ in range(syllables)).capitalize()


def _english_artist(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.30:
        first = rng.choice(vocab.FEMALE_FIRST_NAMES + vocab.MALE_FIRST_NAMES)
        return f"{first} {rng.choice(vocab.LAST_NAMES)}"
    if r < 0.50:
        return f"The {rng.choice(vocab.EN_ADJECTIVES)} {rng.choice(vocab.EN_NOUNS)}s"
    if r < 0.70:
        return _invented(rng, rng.randint(2, 3))
    if r < 0.80:
        return f"{rng.choice(vocab.EN_ADJECTIVES)} {rng.choice(vocab.EN_NOUNS)}"
    if r < 0.88:
        return f"DJ {_invented(rng, 2)}"
    if r < 0.94:
        first = rng.choice(vocab.FEMALE_FIRST_NAMES + vocab.MALE_FIRST_NAMES)
        return f"{first} {rng.choice(vocab.LAST_NAMES)} & The {rng.choice(vocab.EN_NOUNS)}s"
    first = rng.choice(vocab.MALE_FIRST_NAMES)
    other = rng.choice(vocab.FEMALE_FIRST_NAMES)
    return f"{first} {rng.choice(vocab.LAST_NAMES)} feat. {other}"


def _foreign_artist(rng: random.Random, lang: str) -> str:
    words = vocab.FOREIGN[lang]
    r = rng.random()
    if r < 0.70:
        return f"{rng.choice(words['first'])} {rng.choice(words['last'])}"
    if r < 0.88:
        return rng.choice(words["band"])
    if r < 0.94:
        return f"{rng.choice(words['band'])} / {rng.choice(words['first'])}"
    guest = rng.choice(vocab.FEMALE_FIRST_NAMES + vocab.MALE_FIRST_NAMES)
    return f"{rng.choice(words['first'])} {rng.choice(words['last'])} feat. {guest}"


def _english_title(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.30:
        title = f"{rng.choice(vocab.EN_ADJECTIVES)} {rng.choice(vocab.EN_NOUNS)}"
    elif r < 0.45:
        title = f"{rng.choice(vocab.EN_VERBS)} in {rng.choice(vocab.EN_PLACES)}"
    elif r < 0.60:
        title = f"{rng.choice(vocab.EN_NOUNS)} of {rng.choice(vocab.EN_PLACES)}"
    elif r < 0.72:
        title = rng.choice(vocab.EN_NOUNS)
    elif r < 0.82:
        title = f"Song for {rng.choice(vocab.FEMALE_FIRST_NAMES + vocab.MALE_FIRST_NAMES)}"
    elif r < 0.90:
        title = f"Don't Stop {rng.choice(vocab.EN_VERBS)}"
    else:
        title = f"{rng.choice(vocab.EN_VERBS)} {rng.choice(vocab.EN_PLACES).split()[1]}"
    if rng.random() < 0.15:
        title += rng.choice(vocab.TITLE_SUFFIXES)
    return title


def _title(rng: random.Random, lang: str) -> str:
    if lang != "en" and rng.random() < 0.65:
        title = rng.choice(vocab.FOREIGN[lang]["title"])
        if rng.random() < 0.2:
            title += rng.choice(vocab.TITLE_SUFFIXES)
        return title
    return _english_title(rng)


# --- numbers --------------------------------------------------------------------------


def _duration_key(rng: random.Random) -> int:
    """A duration in units of 10 µs (five decimals of seconds), last digit never 0."""
    r = rng.random()
    if r < 0.02:
        seconds = rng.uniform(18.0, 60.0)  # ringtones, interludes
    elif r < 0.05:
        seconds = rng.uniform(480.0, 1800.0)  # long live sets, classical movements
    else:
        seconds = min(max(rng.lognormvariate(5.43, 0.3), 60.0), 900.0)  # median ~228 s
    key = int(seconds * 100_000)
    if key % 10 == 0:
        key += rng.randint(1, 9)
    return key


def _year(rng: random.Random) -> int:
    if rng.random() < 0.45:
        return 0
    return max(1955, 2010 - int(rng.expovariate(1 / 12)))


def _coordinate(value: float, rng: random.Random) -> float:
    return round(value + rng.uniform(-0.05, 0.05), 5)


def _make_artist(rng: random.Random, ids: _Unique[str], names: _Unique[str]) -> tuple[Artist, str]:
    lang = rng.choices(
        [lang for lang, _ in vocab.LANGUAGE_WEIGHTS],
        weights=[w for _, w in vocab.LANGUAGE_WEIGHTS],
    )[0]

    def make_name(r: random.Random) -> str:
        return _english_artist(r) if lang == "en" else _foreign_artist(r, lang)

    name = None
    for _ in range(6):
        candidate = make_name(rng)
        if candidate not in names.seen:
            names.seen.add(candidate)
            name = candidate
            break
    if name is None:  # crowded name space: fall back to a long invented name
        name = names.take(lambda r: _invented(r, 4), rng)

    if rng.random() < 0.4:
        location, lat, lon = "", None, None
    else:
        location, base_lat, base_lon = rng.choice(vocab.ARTIST_LOCATIONS)
        if base_lat is None or base_lon is None or rng.random() < 0.3:
            lat = lon = None
        else:
            lat, lon = _coordinate(base_lat, rng), _coordinate(base_lon, rng)
    artist = Artist(ids.take(_artist_id, rng), name, location, lat, lon)
    return artist, lang


def _songs_per_artist(rng: random.Random) -> int:
    n = 1
    while n < 6 and rng.random() < 0.4:
        n += 1
    return n


def build_catalogue(n_songs: int, rng: random.Random, hidden_songs: int | None = None) -> Catalogue:
    """Build ``n_songs`` written songs and a hidden universe (default ``max(2n, 500)``)."""
    if n_songs < 1:
        raise ValueError("the catalogue needs at least one song")
    n_hidden = max(2 * n_songs, 500) if hidden_songs is None else hidden_songs

    artist_ids: _Unique[str] = _Unique()
    artist_names: _Unique[str] = _Unique()
    song_ids: _Unique[str] = _Unique()
    track_ids: _Unique[str] = _Unique()
    durations: _Unique[int] = _Unique()
    pairs: set[tuple[str, str]] = set()

    def make_song(artist: Artist, lang: str) -> Song:
        for attempt in itertools.count():
            title = _title(rng, lang)
            if attempt > 4:
                title += f" ({rng.choice(vocab.EN_NOUNS)} Version)"
            if (title, artist.name) not in pairs:
                pairs.add((title, artist.name))
                break
        key = durations.take(_duration_key, rng)
        return Song(
            song_id=song_ids.take(_song_id, rng),
            track_id=track_ids.take(_track_id, rng),
            title=title,
            artist=artist,
            duration=key / 100_000,
            year=_year(rng),
        )

    written: list[Song] = []
    written_artists: list[tuple[Artist, str]] = []
    while len(written) < n_songs:
        artist, lang = _make_artist(rng, artist_ids, artist_names)
        written_artists.append((artist, lang))
        for _ in range(min(_songs_per_artist(rng), n_songs - len(written))):
            written.append(make_song(artist, lang))

    hidden: list[Song] = []
    current: tuple[Artist, str] | None = None
    left = 0
    while len(hidden) < n_hidden:
        if rng.random() < 0.2:  # an unwritten song by an artist who is in the catalogue
            artist, lang = rng.choice(written_artists)
            hidden.append(make_song(artist, lang))
            continue
        if left == 0:
            current = _make_artist(rng, artist_ids, artist_names)
            left = _songs_per_artist(rng)
        assert current is not None
        hidden.append(make_song(*current))
        left -= 1

    written.sort(key=lambda s: s.track_id)
    by_id = {a.artist_id: a for a, _ in written_artists}
    artists = sorted(by_id.values(), key=lambda a: a.artist_id)
    return Catalogue(songs=tuple(written), hidden=tuple(hidden), artists=tuple(artists))


# --- song files -----------------------------------------------------------------------


def song_file_path(song: Song) -> str:
    """``song_data/A/B/C/TRABC….json``: the folders are characters 3-5 of the track id."""
    t = song.track_id
    return f"song_data/{t[2]}/{t[3]}/{t[4]}/{t}.json"


def song_file_text(song: Song) -> str:
    """The file's content: one JSON object, default separators, \\u escapes, no newline."""
    a = song.artist
    return json.dumps(
        {
            "num_songs": 1,
            "artist_id": a.artist_id,
            "artist_latitude": a.latitude,
            "artist_longitude": a.longitude,
            "artist_location": a.location,
            "artist_name": a.name,
            "song_id": song.song_id,
            "title": song.title,
            "duration": song.duration,
            "year": song.year,
        }
    )


# --- how plays are spelled ------------------------------------------------------------


def exact_form(song: Song) -> PlayForm:
    return PlayForm("exact", song.artist.name, song.title, song.duration)


def near_miss_kind(song: Song, rng: random.Random) -> str:
    """Choose the kind of near miss a catalogue song shows in the logs."""
    if not (is_ascii(song.title) and is_ascii(song.artist.name)) and rng.random() < 0.55:
        return "mojibake"
    return rng.choice(("case", "case", "whitespace", "duration_rounding", "duration_rounding"))


def near_miss_form(song: Song, kind: str, rng: random.Random) -> PlayForm:
    """Spell ``song`` with one near-miss defect of ``kind``; never equal to the exact form."""
    artist, title, length = song.artist.name, song.title, song.duration
    if kind == "mojibake":
        if is_ascii(artist) and is_ascii(title):
            raise ValueError("mojibake needs a non-ASCII artist or title")
        return PlayForm(kind, mojibake(artist), mojibake(title), length)
    if kind == "case":
        options = [
            (artist, title.lower()),
            (artist, title.upper()),
            (artist.lower(), title),
            (artist.upper(), title),
            (artist, title.title()),
        ]
        rng.shuffle(options)
        for new_artist, new_title in options:
            if (new_artist, new_title) != (artist, title):
                return PlayForm(kind, new_artist, new_title, length)
        return near_miss_form(song, "whitespace", rng)
    if kind == "whitespace":
        r = rng.random()
        if r < 0.6:
            return PlayForm(kind, artist, title + " ", length)
        if r < 0.8:
            return PlayForm(kind, artist, " " + title, length)
        return PlayForm(kind, artist + " ", title, length)
    if kind == "duration_rounding":
        if rng.random() < 0.6:
            new_length = round(length, 2)
        else:
            key = round(length * 100_000) + rng.choice((-1, 1)) * rng.randint(100, 900)
            new_length = key / 100_000
        if new_length == length or abs(new_length - length) >= 0.01:
            raise AssertionError("duration near miss out of range")  # unreachable by design
        return PlayForm(kind, artist, title, new_length)
    raise ValueError(f"unknown near-miss kind: {kind}")


def hidden_form(song: Song, rng: random.Random) -> PlayForm:
    """How a song outside the catalogue is spelled: often mangled like the rest of the feed."""
    artist, title = song.artist.name, song.title
    if not (is_ascii(artist) and is_ascii(title)) and rng.random() < 0.5:
        artist, title = mojibake(artist), mojibake(title)
    elif rng.random() < 0.02:
        title += " "
    return PlayForm("not_in_catalogue", artist, title, song.duration)
