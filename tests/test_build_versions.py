"""The version number a run's sharedImage target gets (galley.jobs.build.distribute.next_version)."""
import pytest

from galley.jobs.build.distribute import DistributionFailed, next_version


@pytest.mark.parametrize("existing, versioning, source, expected", [
    ([], None, None, "1.0.0"),                                               # the first one
    (["1.0.0", "1.0.9", "1.0.10", "0.9.99"], None, None, "1.0.11"),          # numeric, not text, order
    (["1.2.3", "2.0.0"], {"scheme": "Latest"}, None, "2.0.1"),
    (["1.2.3", "2.0.0"], {"scheme": "Latest", "major": -1}, None, "2.0.1"),  # -1 is as if unset
    (["1.2.3", "1.4.0", "2.0.0"], {"scheme": "Latest", "major": 1}, None, "1.4.1"),
    (["1.2.3"], {"scheme": "Latest", "major": 3}, None, "3.0.0"),
    (["1.0.0"], {"scheme": "Source"}, "0.20261122.1", "0.20261122.1"),
    (["latest-build", "1.0.0"], None, None, "1.0.1"),                        # odd names are not versions
])
def test_next_version(existing, versioning, source, expected):
    assert next_version(existing, versioning, source) == expected


def test_source_versioning_needs_a_versioned_source():
    with pytest.raises(DistributionFailed, match="managed image has no version"):
        next_version([], {"scheme": "Source"}, None)
