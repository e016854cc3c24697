import inspect

import mtaio.resources


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(mtaio.resources).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert isinstance(mtaio.resources.__all__, tuple)
    assert set(mtaio.resources.__all__) == public
    for name in mtaio.resources.__all__:
        assert getattr(mtaio.resources, name).__doc__
