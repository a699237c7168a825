"""The built site browses from files: every link of every page resolves to
a file (`tools/check_site_links.py`, which `make docs` also runs after the
build). The check of the built site needs `site/` (`make docs`, the docs
tools); the checker's own logic runs everywhere."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_site_links.py"

pytestmark = pytest.mark.skipif(
    not TOOL.exists(), reason="tools/ is not in this tree (an installed wheel)"
)


def _checker():
    spec = importlib.util.spec_from_file_location("check_site_links", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (ROOT / "site" / "index.html").exists(),
    reason="site/ is not built: `make docs` builds it (with the docs tools)",
)
def test_every_link_of_the_built_site_resolves_to_a_file():
    problems, pages = _checker().broken_links(ROOT / "site")
    assert pages > 10
    assert problems == []


def test_link_check_reports_folders_missing_files_and_anchors(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "speed.html").write_text('<h2 id="measured">M</h2>')
    (tmp_path / "index.html").write_text(
        '<a href="guides/speed.html#measured">ok</a>'
        '<a href="guides/speed.html">ok</a>'
        '<a href="#top">missing anchor</a>'
        '<a href="guides/">a folder</a>'
        '<a href="guides/missing.html">missing</a>'
        '<a href="guides/speed.html#gone">missing anchor</a>'
        '<a href="https://keras.io/">external</a>'
        '<img src="figures/x.png">'
    )
    problems, pages = _checker().broken_links(tmp_path)
    assert pages == 2
    assert sorted((link, why) for _, link, why in problems) == [
        ("#top", "no such anchor"),
        ("figures/x.png", "no such file"),
        ("guides/", "a folder, not a page"),
        ("guides/missing.html", "no such file"),
        ("guides/speed.html#gone", "no such anchor"),
    ]


def test_site_links_end_in_html_files():
    # With directory URLs, `site/index.html` links to `guides/speed/`: a
    # folder, which a browser opening the file shows as a listing.
    config = (ROOT / "mkdocs.yml").read_text()
    assert "\nuse_directory_urls: false\n" in config
