"""Server profiles: the behaviours real Plex Media Servers show where they differ.

A profile is data (a frozen ``Profile``); the renderer and the HTTP handler read its fields and
never its name. Every field comes from evidence in ``plex-wire-format.md`` (quoted in
docs/simulator.md, "Profiles"). ``Simulator(profile="pms-1.41")``, ``plexcache simulate
--profile pms-1.41``.

``CLASSIC`` is the simulator as it was before profiles (pinned byte for byte by
tests/test_simulator.py); ``REALISTIC``, the most realistic one we know, is the default. ``ALL_PROFILES`` lists every name, for
``pytest.mark.parametrize``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Profile.original_title: when a track's originalTitle is sent
ORIGINAL_STORED = "stored"  # as the simulator's model stores it: only distinct names (and edits)
ORIGINAL_TAGGED = "tagged"  # also when the file's track-artist tag equals the album artist (§13)
ORIGINAL_DISTINCT = "distinct"  # never when it equals the album artist (grandparentTitle)
ORIGINAL_MODES = (ORIGINAL_STORED, ORIGINAL_TAGGED, ORIGINAL_DISTINCT)


@dataclass(frozen=True)
class Profile:
    """How one kind of server renders the same library.

    ``*_tags_listed``: tags of that kind per item in listings (``/all``, ``/children``): 0 none,
    N the first N, None all of them. Full items (``/library/metadata/k1,k2``) always carry
    every tag."""

    name: str
    version: str  # PMS version in GET / , GET /identity and the Server header
    evidence: str  # where in plex-wire-format.md the behaviour comes from
    track_genres: bool = True  # tracks have their own genres (PMS >= 1.40); False: none anywhere
    track_tags_listed: int | None = 0  # Genre per track in listings
    album_tags_listed: int | None = 2  # Genre (and Format/Subformat, when listed) per album
    artist_tags_listed: int | None = 2  # Genre per artist
    artist_countries_listed: int | None = 1  # Country per artist
    album_subformats_listed: bool = False  # Format/Subformat (Live) in album listings too
    leaf_count_listed: bool = False  # leafCount in album listings (full albums always have it)
    original_title: str = ORIGINAL_TAGGED
    honours_excludes: bool = True  # excludeFields / excludeElements trim the answer

    def __post_init__(self):
        if self.original_title not in ORIGINAL_MODES:
            raise ValueError(
                f"original_title must be one of {ORIGINAL_MODES}, not {self.original_title!r}"
            )
        for name in (
            "track_tags_listed",
            "album_tags_listed",
            "artist_tags_listed",
            "artist_countries_listed",
        ):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be None or an int >= 0, not {v!r}")


# PMS 1.41 as captured: the default to aim at (see REALISTIC)
_PMS_141 = Profile(
    name="pms-1.41",
    version="1.41.8.9834-071366d65",
    evidence="§2.4 (listings truncate tags; artists 2 Genre; no Genre in track listings), §13 (album listings "
    "without leafCount; originalTitle equal to grandparentTitle), §2.4 track genres since PMS 1.40, §9 (Live "
    "is an album Subformat), §5.2/§11.1 (excludeFields/excludeElements)",
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _PMS_141,
        Profile(
            name="classic",
            version="1.41.5.9522-a96edc606",
            evidence="the simulator before profiles: §11.1's checklist (<=2 Genre on artists and albums) "
            "applied to tracks too, and leafCount in album listings",
            track_tags_listed=2,
            leaf_count_listed=True,
            original_title=ORIGINAL_STORED,
        ),
        replace(
            _PMS_141,
            name="pms-1.29-legacy",
            version="1.29.1.6316-f4cdfea9c",
            evidence="§2.4 (before PMS 1.40 tracks had no genre), §6 (/identity of PMS 1.29.1), §2.1 (a 2022 "
            "listing without originalTitle where the track artist is the album artist)",
            track_genres=False,
            original_title=ORIGINAL_DISTINCT,
        ),
        replace(
            _PMS_141,
            name="listing-1tag",
            version="1.40.1.8227-c0dd5a73e",
            evidence="§13 (album and artist listings carry 1-3 Genre depending on the server), §2.4/§12 (whether "
            "track listings carry Genre is unknown: here they do, truncated)",
            track_tags_listed=1,
            album_tags_listed=1,
            artist_tags_listed=1,
        ),
        replace(
            _PMS_141,
            name="listing-3tags",
            version="1.40.3.8555-fef15d30c",
            evidence="§2.4 (a 2016 capture: <=3 Genre per item), §13 (1-3 Genre), §12 (Genre 2-3, Country <=2)",
            track_tags_listed=3,
            album_tags_listed=3,
            artist_tags_listed=3,
            artist_countries_listed=2,
        ),
        replace(
            _PMS_141,
            name="listing-alltags",
            version="1.42.1.10060-4e8b05daf",
            evidence="§2.4/§12 (truncation limits are not documented): a server that truncates nothing",
            track_tags_listed=None,
            album_tags_listed=None,
            artist_tags_listed=None,
            artist_countries_listed=None,
        ),
        replace(
            _PMS_141,
            name="leafcount-listings",
            version="1.41.3.9314-a0bfb8370",
            evidence="no capture shows it (§13: every real album listing lacks leafCount); the old simulator's "
            "habit, kept so that a server sending it is handled too",
            leaf_count_listed=True,
        ),
        replace(
            _PMS_141,
            name="ignores-exclude",
            version="1.41.4.9463-630c9f557",
            evidence="§5.2 (official docs: excludeFields/excludeElements are 'treated as requests, not "
            "guarantees')",
            honours_excludes=False,
        ),
        replace(
            _PMS_141,
            name="listing-subformats",
            version="1.41.6.9685-d301f511a",
            evidence="§12 (whether album listings include Format/Subformat is unknown): here they do",
            album_subformats_listed=True,
        ),
    )
}

CLASSIC = "classic"
REALISTIC = "pms-1.41"
LEGACY = "pms-1.29-legacy"
DEFAULT = REALISTIC  # Simulator() without a profile: the most realistic server we know
ALL_PROFILES = [REALISTIC, *(n for n in PROFILES if n != REALISTIC)]


def get_profile(profile: str | Profile | None) -> Profile:
    "A Profile from its name (None: the default); ValueError naming the known ones otherwise"
    if profile is None:
        return PROFILES[DEFAULT]
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown simulator profile {profile!r}; expected one of {', '.join(ALL_PROFILES)}"
        ) from None
