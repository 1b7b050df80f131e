"""The wheel the image installs (non-editable) carries everything the app reads from disk:
templates, translations, migrations, static files, the demo data; and it runs from there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tipline.ops.release import __version__

ROOT = Path(__file__).resolve().parents[2]

_RUN = """
import sys, tipline
from pathlib import Path
assert str(Path(tipline.__file__)).startswith(sys.argv[1]), tipline.__file__
from tipline.app import create_app
from tipline.cli import check_database
from tipline import migrations
from tipline.settings import load_settings
settings = load_settings()
migrations.upgrade(settings.database_url)
app = create_app(settings)
page = app.test_client().get("/report?lang=es")
html = page.get_data(as_text=True)
assert page.status_code == 200, page.status_code
assert "911" in html and "988" in html
print("lang-es" if 'lang="es"' in html else "lang-?")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300, cwd=out)
    (found,) = out.glob("tipline-*.whl")
    return found


def test_the_wheel_carries_every_file_the_app_reads(wheel: Path) -> None:
    assert wheel.name.startswith(f"tipline-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"tipline/templates/{p.relative_to(ROOT / 'templates')}"
                 for p in (ROOT / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= names
    migrations = {f"tipline/migrations/versions/{p.name}"
                  for p in (ROOT / "tipline/migrations/versions").glob("*.py")}
    assert migrations <= names and "tipline/migrations/script.py.mako" in names
    for lang in ("es", "bs"):
        assert f"tipline/translations/{lang}/LC_MESSAGES/messages.mo" in names
    assert {"tipline/demo/directory.demo.yaml", "tipline/demo/policy.demo.yaml"} <= names
    assert any(n.startswith("tipline/static/css/") for n in names)


def test_the_installed_wheel_serves_a_translated_page(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
    env.update(PYTHONPATH=str(site), TIPLINE_DATA_DIR=str(tmp_path / "data"),
               TIPLINE_CONFIG_FILE=str(tmp_path / "empty.env"), TIPLINE_DEMO_DATA="false")
    (tmp_path / "empty.env").write_text("")
    (tmp_path / "data").mkdir()
    proc = subprocess.run([sys.executable, "-c", _RUN, str(site)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lang-es" in proc.stdout
