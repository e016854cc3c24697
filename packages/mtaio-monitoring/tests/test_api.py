from __future__ import annotations

import pickle

import mtaio.monitoring
from mtaio.monitoring import Alert


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(mtaio.monitoring).items()
        if not name.startswith("_") and (isinstance(obj, type) or callable(obj))
    }
    public |= {"SYSTEM_METRICS", "METRIC_ALIASES", "DEFAULT_BUCKETS"}
    assert isinstance(mtaio.monitoring.__all__, tuple)
    assert set(mtaio.monitoring.__all__) == public
    assert len(set(mtaio.monitoring.__all__)) == len(mtaio.monitoring.__all__)


def test_classes_name_the_public_module() -> None:
    for name in mtaio.monitoring.__all__:
        obj = getattr(mtaio.monitoring, name)
        if isinstance(obj, type):
            assert obj.__module__ == "mtaio.monitoring", name


def test_plain_data_pickles_through_the_public_path() -> None:
    alert = Alert("x", "info", 1.0, details={"a": 1})
    assert pickle.loads(pickle.dumps(alert)) == alert
