import mtaio.data


def test_all_lists_every_public_name_and_only_those() -> None:
    public = {
        name
        for name, obj in vars(mtaio.data).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == "mtaio.data"
    }
    assert isinstance(mtaio.data.__all__, tuple)
    assert public <= set(mtaio.data.__all__)
    for name in mtaio.data.__all__:
        assert hasattr(mtaio.data, name), name


def test_classes_show_the_public_module() -> None:
    assert repr(mtaio.data.Pipeline) == "<class 'mtaio.data.Pipeline'>"
