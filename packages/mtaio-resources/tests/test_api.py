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


def test_public_objects_name_the_public_module() -> None:
    import pickle

    for name in mtaio.resources.__all__:
        assert getattr(mtaio.resources, name).__module__ == "mtaio.resources"
    limit = mtaio.resources.Limit(5, per=2)
    assert pickle.loads(pickle.dumps(limit)) == limit
    state = mtaio.resources.CircuitState.OPEN
    assert pickle.loads(pickle.dumps(state)) is state


def test_docstring_examples_run() -> None:
    import doctest

    # the classes name the public module, so the examples are found there
    result = doctest.testmod(mtaio.resources, raise_on_error=True)
    assert result.attempted >= 3
    assert result.failed == 0
