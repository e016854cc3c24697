"""Every portion's public surface is deliberate: a tuple ``__all__`` that lists exactly the
classes and functions the portion defines publicly (anyio's test_all_attributes, per portion)."""

import importlib
import importlib.resources
import inspect
import pkgutil
from types import ModuleType

import pytest

import mtaio

PORTIONS = sorted(
    name
    for info in pkgutil.iter_modules(mtaio.__path__, "mtaio.")
    if not (name := info.name).rsplit(".", 1)[-1].startswith("_")
)


def defined_in(module: ModuleType, obj: object) -> bool:
    owner = getattr(obj, "__module__", None) or ""
    return owner == module.__name__ or owner.startswith(module.__name__ + ".")


def test_every_portion_is_found() -> None:
    assert {"mtaio.exceptions", "mtaio.typing"} <= set(PORTIONS)


@pytest.mark.parametrize("portion", PORTIONS)
def test_all_is_a_tuple_of_existing_unique_names(portion: str) -> None:
    module = importlib.import_module(portion)
    exported = module.__all__
    assert isinstance(exported, tuple), f"{portion}.__all__ must be a tuple"
    assert len(set(exported)) == len(exported), f"{portion}.__all__ has duplicates"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{portion}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("portion", PORTIONS)
def test_every_public_class_and_function_is_exported(portion: str) -> None:
    module = importlib.import_module(portion)
    public = {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and defined_in(module, obj)
    }
    unexported = sorted(public - set(module.__all__))
    assert not unexported, f"{portion} defines public names missing from __all__: {unexported}"


@pytest.mark.parametrize("portion", PORTIONS)
def test_portion_ships_py_typed(portion: str) -> None:
    assert importlib.resources.files(portion).joinpath("py.typed").is_file()


@pytest.mark.parametrize("portion", PORTIONS)
def test_exports_name_their_public_module(portion: str) -> None:
    module = importlib.import_module(portion)
    private = [
        name
        for name in module.__all__
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and obj.__module__.startswith(portion + "._")
    ]
    assert not private, f"{portion} exports still naming a private module: {private}"
