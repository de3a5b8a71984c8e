import pytest

from core.settings import ICE_ENV, SettingsError, ice_servers, rtc_configuration


def test_default_is_no_ice_server_and_explicit():
    assert rtc_configuration(None, environ={}) == {"iceServers": []}


def test_environment_wins_over_secrets():
    env = {ICE_ENV: '[{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]'}
    secrets = {"ice_servers": [{"urls": ["stun:stun.example.org"]}]}
    assert ice_servers(secrets, env) == [
        {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}
    ]
    assert ice_servers(secrets, {}) == [{"urls": ["stun:stun.example.org"]}]


@pytest.mark.parametrize("raw,message", [
    ("not json", "not valid JSON"),
    ('{"urls": "stun:x"}', "must be a list"),
    ('[{"url": "stun:x"}]', "needs a \\\"urls\\\" entry"),
    ('[{"urls": "http://x"}]', "must start with stun:"),
])
def test_malformed_settings_say_what_is_wrong(raw, message):
    with pytest.raises(SettingsError, match=message):
        ice_servers(None, {ICE_ENV: raw})
