"""--storage-options with per-URL entries: each URL gets the options of the longest prefix holding it."""

from __future__ import annotations

from mirage.featstore.store.location import endpoint_of, fs_options, options_for

OPTS = {"anon": False,
        "s3://data": {"client_kwargs": {"endpoint_url": "http://a:9000"}},
        "s3://data/private/": {"key": "k2", "client_kwargs": {"endpoint_url": "http://b:9000"}},
        "s3://results": {"key": "k3"}}


def test_longest_prefix_wins_over_plain_keys():
    assert options_for("s3://data/emo.zarr", OPTS) == {"anon": False, "client_kwargs": {"endpoint_url": "http://a:9000"}}
    assert options_for("s3://data/private/x.zarr", OPTS) == {"anon": False, "key": "k2",
                                                             "client_kwargs": {"endpoint_url": "http://b:9000"}}
    assert options_for("s3://results", OPTS) == {"anon": False, "key": "k3"}
    assert options_for("s3://database/x", OPTS) == {"anon": False}  # a prefix matches whole path segments only
    assert endpoint_of(OPTS, "s3://data/private/y") == "http://b:9000"


def test_a_dict_without_url_keys_serves_every_url_as_before():
    plain = {"client_kwargs": {"endpoint_url": "http://a:9000"}}
    assert options_for("s3://any/thing", plain) == plain and options_for("/local/path", None) == {}
    assert fs_options("s3://any/thing", plain) == {**plain, "use_listings_cache": False}
