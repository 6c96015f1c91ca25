"""A family's registry: register once, find by name (importing lazily), list the names."""

from __future__ import annotations

import importlib
import sys

import pytest

from eofm.models.registry import Registry, UnknownNameError


def test_registered_objects_are_found_by_name_and_listed():
    family: Registry[type] = Registry("task model")

    @family.register("wgast")
    class Wgast:
        pass

    assert family.get("wgast") is Wgast
    assert family.names() == ("wgast",)
    assert "wgast" in family and "loan" not in family


def test_unknown_name_lists_the_known_ones_and_the_nearest():
    family: Registry[object] = Registry("task model")
    family.register("wgast")(object())
    family.register("loan")(object())
    with pytest.raises(
        UnknownNameError,
        match=r"unknown task model 'lon' \(did you mean 'loan'\?\); "
        r"expected one of \['loan', 'wgast'\]",
    ):
        family.get("lon")
    assert issubclass(UnknownNameError, ValueError)


def test_registering_a_name_twice_fails():
    family: Registry[object] = Registry("task model")
    family.register("loan")(object())
    with pytest.raises(ValueError, match=r"task model 'loan' is already registered"):
        family.register("loan")(object())


def test_lazy_names_are_listed_without_import_and_imported_on_get(tmp_path, monkeypatch):
    (tmp_path / "eofm_lazy_family.py").write_text(
        "from eofm.models.registry import Registry\n"
        "FAMILY = Registry('task model', lazy={'lazy': 'eofm_lazy_model'})\n"
    )
    (tmp_path / "eofm_lazy_model.py").write_text(
        "from eofm_lazy_family import FAMILY\n@FAMILY.register('lazy')\nclass Lazy:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("eofm_lazy_family", "eofm_lazy_model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    family = importlib.import_module("eofm_lazy_family").FAMILY
    assert family.names() == ("lazy",)
    assert "eofm_lazy_model" not in sys.modules
    assert family.get("lazy").__name__ == "Lazy"
    assert "eofm_lazy_model" in sys.modules


def test_a_lazy_module_that_does_not_register_its_name_is_named(tmp_path, monkeypatch):
    (tmp_path / "eofm_silent_model.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    family: Registry[object] = Registry("task model", lazy={"quiet": "eofm_silent_model"})
    with pytest.raises(ImportError, match=r"eofm_silent_model did not register task model 'quiet'"):
        family.get("quiet")
