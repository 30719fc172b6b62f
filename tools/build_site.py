"""Build the course site: every committed notebook a page, with the companion and the READMEs.

    pip install -r docs/requirements.txt     # once: Sphinx, MyST-NB, the Furo theme, Playwright
    python tools/build_site.py               # writes build/site/; open build/site/index.html

The notebooks are not executed: the site shows the outputs they were committed with. MathJax, which
renders the formulas, comes from npm's `mathjax` package (installed into build/site-tools/ on the
first build; needs Node.js and npm), so the pages load nothing from a CDN. Warnings are errors: a
broken link between pages or a notebook MyST-NB cannot read fails the build.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "build" / "site-tools"
MATHJAX_VERSION = "3"  # the MathJax major version Sphinx's mathjax extension is written for


def install_mathjax() -> Path:
    """build/site-tools/static/mathjax/, MathJax's browser files, from npm (once)."""
    target = TOOLS / "static" / "mathjax"
    if (target / "tex-chtml.js").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("error: the site renders formulas with MathJax from npm, and npm was not found: "
                         "install Node.js (https://nodejs.org, or `apt-get install nodejs npm`) and run this again")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), f"mathjax@{MATHJAX_VERSION}"],
                   check=True)
    shutil.copytree(TOOLS / "node_modules" / "mathjax" / "es5", target)
    return target


def build(out: Path) -> None:
    install_mathjax()
    try:
        import myst_nb  # noqa: F401
    except ImportError:
        raise SystemExit("error: the site needs Sphinx and MyST-NB: pip install -r docs/requirements.txt") from None
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-c", str(ROOT / "docs"), "-W", "--keep-going",
                    "-q", str(ROOT), str(out)], check=True)
    # Sphinx names the page of its root document after it (docs/index.html); the site opens at index.html.
    (out / "index.html").write_text('<!DOCTYPE html>\n<meta charset="utf-8">\n<title>Residual networks, hands on</title>\n'
                                    '<link rel="icon" href="_static/favicon.svg">\n'
                                    '<meta http-equiv="refresh" content="0; url=docs/index.html">\n'
                                    '<a href="docs/index.html">The course</a>\n', encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "site"), help="output folder (default build/site)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    try:
        build(out)
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(map(str, error.cmd[:4]))} ... failed (exit {error.returncode}); "
              f"its messages are above", file=sys.stderr)
        return 1
    print(f"site written to {out}; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
