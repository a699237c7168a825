"""Checks that the built site browses from files: every relative link and
asset of every page of `site/` resolves to a file that exists (not to a
folder, which a browser opening `site/index.html` shows as a listing), and
every `#anchor` to an id of its page. `make docs` runs it after the build.

    python tools/check_site_links.py [SITE_DIR]    # default: site
"""

import html.parser
import os
import sys
import urllib.parse

SKIPPED_SCHEMES = ("http:", "https:", "mailto:", "data:", "javascript:")


class _Page(html.parser.HTMLParser):
    """The links (`href`, `src`) and the ids of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            value = attrs.get(key)
            # <link rel="canonical"> and friends name the published site.
            if value and not (tag == "link" and attrs.get("rel") != "stylesheet"):
                self.links.append(value)


def _parse(path):
    page = _Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def broken_links(site):
    """`(page, link, why)` for every link of the site that does not resolve
    from files; empty when all do."""
    site = os.path.abspath(site)
    pages = {}
    for folder, _, files in os.walk(site):
        for name in files:
            # 404.html is served by a web server for unknown addresses,
            # with absolute links; it is no page of the browsable site.
            if name.endswith(".html") and name != "404.html":
                path = os.path.join(folder, name)
                pages[path] = _parse(path)
    problems = []
    for path, page in sorted(pages.items()):
        for link in page.links:
            if link.startswith(SKIPPED_SCHEMES) or link.startswith("//"):
                continue
            parts = urllib.parse.urlsplit(link)
            target = path
            if parts.path:
                if parts.path.startswith("/"):
                    problems.append((path, link, "absolute path"))
                    continue
                target = os.path.normpath(
                    os.path.join(
                        os.path.dirname(path), urllib.parse.unquote(parts.path)
                    )
                )
            if os.path.isdir(target):
                problems.append((path, link, "a folder, not a page"))
            elif not os.path.isfile(target):
                problems.append((path, link, "no such file"))
            elif parts.fragment and target.endswith(".html"):
                ids = pages[target].ids if target in pages else _parse(target).ids
                if urllib.parse.unquote(parts.fragment) not in ids:
                    problems.append((path, link, "no such anchor"))
    return problems, len(pages)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    site = argv[0] if argv else "site"
    if not os.path.isfile(os.path.join(site, "index.html")):
        print(
            f"{site}/index.html does not exist: build the site first", file=sys.stderr
        )
        return 2
    problems, count = broken_links(site)
    for page, link, why in problems:
        print(f"{os.path.relpath(page, site)}: {link}: {why}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} broken links in {count} pages", file=sys.stderr)
        return 1
    print(f"{count} pages: every link resolves to a file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
