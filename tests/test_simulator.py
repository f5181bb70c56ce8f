import requests
from plexapi.server import PlexServer


def plex(sim):
    return PlexServer(sim.url, sim.token)


def test_plexapi_lists_whole_section(sim):
    server = plex(sim)
    music = server.library.section("Music")
    tracks = music.searchTracks()
    assert len(tracks) == sim.library.track_count(1)
    assert [str(t.ratingKey) for t in tracks] == sim.library.track_keys(1)


def test_identity_needs_no_token(sim):
    r = requests.get(sim.url + "/identity")
    assert r.status_code == 200
    assert sim.machine_identifier in r.text
