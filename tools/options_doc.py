"""Write, print or check ``docs/options.md``: every spec key, generated from the option models.

    python tools/options_doc.py            # print the page
    python tools/options_doc.py --write    # (re)write docs/options.md
    python tools/options_doc.py --check    # exit 1 with a diff when docs/options.md is out of date

The page documents the core keys of the spec's sections and the options of every component ntframe's own
distribution registers (:func:`ntframe.options.render_markdown`); ``tests/test_options.py`` keeps it current.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "options.md"
sys.path.insert(0, str(ROOT))           # document this checkout, whatever else is installed

from ntframe.host import PluginHost
from ntframe.options import OWN_DISTRIBUTION, render_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(ROOT)}")
    action.add_argument("--check", action="store_true", help=f"exit 1 with a diff when {DOC.relative_to(ROOT)} "
                                                              f"differs from the models")
    args = parser.parse_args(argv)
    host = PluginHost().load()
    broken = [p for p in host.plugins.values() if p.distribution == OWN_DISTRIBUTION and (p.error or p.blocked)]
    if broken and args.write:
        for plugin in broken:
            print(f"plugin {plugin.name}: {plugin.error or 'blocked (NTFRAME_DISABLE_PLUGINS / NTFRAME_LOAD_PLUGINS)'}",
                  file=sys.stderr)
        print("not writing a page that would miss these plugins' components", file=sys.stderr)
        return 2
    text = render_markdown(host)
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(keepends=True), text.splitlines(keepends=True),
                                                   f"{DOC.relative_to(ROOT)} (on disk)",
                                                   f"{DOC.relative_to(ROOT)} (from the models)"))
        print(f"\n{DOC.relative_to(ROOT)} is out of date: run python tools/options_doc.py --write", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
