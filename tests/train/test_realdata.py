"""EmoDB (the 2 s truncated copy in ../shared/corpora): logmel + linear classifier, LOSO."""

from __future__ import annotations

import pytest

from tests.conftest import shared_corpus


@pytest.mark.realdata
@pytest.mark.slow
def test_emodb_logmel_loso_is_well_above_chance(tmp_path):
    from mirage.featstore.extract import extract
    from mirage.train.fit import fit

    root = shared_corpus("emodb")
    url = str(tmp_path / "emodb.zarr")
    extract("emodb", store=url, root=str(root), audio_model="logmel", text_model=None, progress=False)
    m = fit(url, str(tmp_path / "r"), evaluation="loso").metrics
    assert m["n_folds"] == 10 and abs(m["chance_uar"] - 1 / 7) < 1e-6
    assert m["uar_mean"] > 0.45, m["uar_mean"]  # measured 0.611 (eGeMAPS reference on this copy: 0.63)
