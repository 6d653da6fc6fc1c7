"""Every Spanish catalogue is complete and its committed .mo is what its .po compiles to."""

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = sorted(p for p in ROOT.glob("**/locale/es/LC_MESSAGES/django.po")
                    if ".venv" not in p.parts)


def _catalogue(mo: Path) -> dict:
    with mo.open("rb") as f:
        return {k: v for k, v in gettext.GNUTranslations(f)._catalog.items() if k}


def test_every_catalogue_is_found():
    assert {p.relative_to(ROOT).as_posix() for p in CATALOGUES} == {
        "locale/es/LC_MESSAGES/django.po", "apps/dexma/locale/es/LC_MESSAGES/django.po",
        "apps/volue/locale/es/LC_MESSAGES/django.po"}


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext's msgfmt is not installed")
@pytest.mark.parametrize("po", CATALOGUES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_catalogue_is_translated_and_compiled(po, tmp_path):
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(po)], check=True,
                   capture_output=True)
    text = po.read_text()
    assert "#, fuzzy" not in text
    compiled = _catalogue(fresh)
    untranslated = [k for k, v in compiled.items() if not v]
    # msgfmt leaves untranslated messages out: count the msgids of the .po instead.
    msgids = text.count("\nmsgid ") - 1  # less the header
    # Plural forms are keyed (msgid, form).
    assert not untranslated
    assert len({k[0] if isinstance(k, tuple) else k for k in compiled}) == msgids
    assert _catalogue(po.with_suffix(".mo")) == compiled, "run msgfmt (see README)"
