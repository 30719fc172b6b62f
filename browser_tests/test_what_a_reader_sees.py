"""The course site and the committed notebooks, opened in headless Chromium as a reader opens them.

Every page of the built site loads without console errors, broken images or broken links, renders its
formulas, keeps every solution folded, and shows finished progress bars; notebook 05's comparison is
a figure; search finds pages. In JupyterLab, a committed notebook shows the same, and a notebook run
with Run All still keeps its solutions folded. Screenshots go to build/screenshots/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from browser_tests.conftest import ROOT, SCREENSHOTS, SITE

PAGES_WITH_FORMULAS = ["01_degradation_problem", "02_residual_block", "03_doubling_block", "04_resnet18",
                       "05_training_resnet18", "06_save_load_evaluate", "08_training_fast"]
STALE_BAR = re.compile(r"(?<![\d.])0%\|")  # a progress bar shown at its first state: "  0%|      | 0/96"


def site_pages() -> list[Path]:
    return sorted(path for path in SITE.rglob("*.html")
                  if not path.relative_to(SITE).parts[0].startswith("_") and path.name != "genindex.html")


def watch(page) -> list[str]:
    """Collect what went wrong while a page loads: console errors, page errors, failed requests."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(
        f"console: {message.text} ({message.location.get('url')})"))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("response", lambda response: response.status >= 400 and problems.append(
        f"HTTP {response.status}: {response.url}"))
    return problems


def link_problems(page, page_path: Path, base_url: str) -> list[str]:
    problems = []
    for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
        parsed = urlparse(href)
        if not href.startswith(base_url):
            continue  # a web address (the papers): no network here to follow it
        target = SITE / unquote(parsed.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link to {parsed.path}")
        elif parsed.fragment and target.suffix == ".html" and \
                f'id="{parsed.fragment}"' not in target.read_text(encoding="utf-8"):
            problems.append(f"link to {parsed.path}#{parsed.fragment}: no such anchor")
    return problems


def test_every_page_of_the_site_loads_clean_and_keeps_its_solutions_folded(browser_context, site_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = site_pages()
    assert len([p for p in pages if p.parent.name == "notebooks"]) == 9, "every notebook is a page"
    found = []
    for path in pages:
        page = browser_context.new_page()
        problems = watch(page)
        relative = path.relative_to(SITE).as_posix()
        page.goto(f"{site_url}/{relative}", wait_until="networkidle")
        if path.stem in PAGES_WITH_FORMULAS:
            page.wait_for_selector("mjx-container", timeout=30_000)  # MathJax typeset the formulas
            if page.locator("mjx-merror").count():
                problems.append("a formula MathJax could not read")
        broken = page.eval_on_selector_all("img", "images => images.filter(i => !(i.complete && i.naturalWidth > 0))"
                                                  ".map(i => i.src)")
        problems += [f"broken image {src}" for src in broken]
        problems += link_problems(page, path, site_url)
        if page.eval_on_selector_all("details", "all => all.filter(d => d.open).length"):
            problems.append("a solution is open")
        if page.locator("details pre").evaluate_all("blocks => blocks.filter(b => b.checkVisibility()).length"):
            problems.append("a solution's code is visible")
        if STALE_BAR.search(page.inner_text("body")):
            problems.append("a progress bar shows its first state (0%) instead of its last")
        page.screenshot(path=str(SCREENSHOTS / f"site-{relative.replace('/', '-')}.png"), full_page=True)
        found += [f"{relative}: {problem}" for problem in problems]
        page.close()
    assert not found, "\n".join(found)


def test_notebook_05_shows_its_comparison_as_a_figure_on_the_site(browser_context, site_url):
    page = browser_context.new_page()
    page.goto(f"{site_url}/notebooks/05_training_resnet18.html", wait_until="networkidle")
    cell = page.locator("div.cell", has_text="compare_runs_widget(")
    assert cell.count() == 1
    figures = cell.locator("div.cell_output img")
    assert figures.count() >= 1, "the comparison's figure is missing from the page"
    assert figures.first.evaluate("image => image.naturalWidth") > 300
    assert "Controls of an interactive comparison" in cell.inner_text()  # the text where the controls were
    page.close()


def test_the_site_search_finds_the_notebooks(browser_context, site_url):
    page = browser_context.new_page()
    page.goto(f"{site_url}/search.html?q=BatchNorm", wait_until="networkidle")
    page.wait_for_selector("ul.search li", timeout=30_000)
    results = page.locator("ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("notebooks/02_residual_block" in href for href in results), results
    page.close()


def test_the_companion_is_a_page_in_both_languages_linked_from_the_contents(browser_context, site_url):
    page = browser_context.new_page()
    page.goto(f"{site_url}/docs/index.html", wait_until="networkidle")
    assert page.locator("a[href$='article-companion.html']").count() >= 1
    assert page.locator("a[href$='article-companion-zh.html']").count() >= 1
    page.goto(f"{site_url}/docs/article-companion-zh.html", wait_until="networkidle")
    assert "术语表" in page.inner_text("body") and "恒等映射" in page.inner_text("body")
    page.close()


def test_a_colab_link_appears_only_once_the_repository_is_set(browser_context, site_url):
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["course_utils"]
    page = browser_context.new_page()
    page.goto(f"{site_url}/notebooks/00_setup.html", wait_until="networkidle")
    colab_links = page.locator("a[href*='colab.research.google.com']").count()
    assert (colab_links > 0) == bool(settings["repository"]), colab_links
    page.close()


def open_in_jupyterlab(browser_context, url: str, name: str):
    page = browser_context.new_page()
    problems = watch(page)
    # ?reset: a fresh workspace, not the tabs an earlier test left open (and perhaps unsaved).
    page.goto(f"{url}/lab/tree/notebooks/{name}?reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown", timeout=60_000)
    time.sleep(2)  # the outputs render just after the cells
    return page, problems


def test_a_committed_notebook_in_jupyterlab_shows_its_figure_and_folded_solutions(browser_context, jupyterlab_url):
    url, _work = jupyterlab_url
    page, _problems = open_in_jupyterlab(browser_context, url, "05_training_resnet18.ipynb")
    cell = page.locator(".jp-CodeCell", has_text="compare_runs_widget(")
    assert cell.count() == 1
    cell.scroll_into_view_if_needed()
    figure = cell.locator(".jp-OutputArea-output img")
    figure.first.wait_for(timeout=30_000)
    assert figure.first.evaluate("image => image.naturalWidth") > 300, "the comparison's figure is not shown"
    details = page.locator(".jp-RenderedMarkdown details")
    assert details.count() >= 3
    assert details.evaluate_all("all => all.filter(d => d.open).length") == 0
    cell.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-05.png"))
    page.close()


def run_all(page, timeout: float = 300) -> None:
    """Run > Run All Cells, then wait until every code cell has its number and the kernel is idle."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + timeout
    prompts: list[str] = []
    while time.monotonic() < deadline:
        time.sleep(1)
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts) and \
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
    raise AssertionError(f"Run All did not finish within {timeout:.0f} s: prompts {prompts}")


def test_run_all_in_jupyterlab_keeps_the_solutions_folded(browser_context, jupyterlab_url):
    url, work = jupyterlab_url
    page, _problems = open_in_jupyterlab(browser_context, url, "03_doubling_block.ipynb")
    run_all(page)
    notebook = json.loads((work / "notebooks" / "03_doubling_block.ipynb").read_text(encoding="utf-8"))
    expected_errors = sum("raises-exception" in cell["metadata"].get("tags", []) for cell in notebook["cells"])
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Error")
    assert errors.count() == expected_errors, errors.all_inner_texts()  # only the errors the lesson shows
    details = page.locator(".jp-RenderedMarkdown details")
    assert details.count() >= 3
    assert details.evaluate_all("all => all.filter(d => d.open).length") == 0, "Run All opened a solution"
    assert page.locator(".jp-OutputArea-output", has_text="Solution").count() == 0
    details.last.scroll_into_view_if_needed()  # the notebook scrolls inside the page: show its end
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-03-after-run-all.png"))
    page.close()


def test_notebook_05_run_saved_and_reopened_still_shows_its_comparison(browser_context, jupyterlab_url):
    # What a learner does: Run All, save, come back another day (a new kernel, no widget models).
    url, work = jupyterlab_url
    page, _problems = open_in_jupyterlab(browser_context, url, "05_training_resnet18.ipynb")
    run_all(page)
    path = work / "notebooks" / "05_training_resnet18.ipynb"
    before = path.stat().st_mtime_ns
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Save Notebook").first.click()
    deadline = time.monotonic() + 60
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:  # JupyterLab wrote the file
        time.sleep(0.5)
    assert path.stat().st_mtime_ns != before, "JupyterLab did not save the notebook within 60 s"
    for session in json.load(urllib.request.urlopen(f"{url}/api/sessions")):
        urllib.request.urlopen(urllib.request.Request(f"{url}/api/sessions/{session['id']}", method="DELETE"))
    saved = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in saved["cells"] if "compare_runs_widget(" in "".join(c["source"]))
    assert any("image/png" in output.get("data", {}) for output in cell["outputs"]), "the saved file has no figure"
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    shown = page.locator(".jp-CodeCell", has_text="compare_runs_widget(").locator(".jp-OutputArea-output img")
    shown.first.wait_for(timeout=60_000)
    assert shown.first.evaluate("image => image.naturalWidth") > 300
    shown.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-05-saved-and-reopened.png"))
    page.close()


def test_the_html_export_shows_the_comparison_figure_and_finished_bars(browser_context, tmp_path):
    # nbconvert draws a widget from saved widget state (or leaves it empty): the figure and the bars'
    # last lines must be outputs of their own. The export's own CDN scripts cannot load here, so
    # console errors are not judged, only what is on the page.
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
                    str(ROOT / "notebooks" / "05_training_resnet18.ipynb")], check=True, capture_output=True)
    page = browser_context.new_page()
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())  # no network here
    page.goto((tmp_path / "05_training_resnet18.html").as_uri(), wait_until="load")
    cell = page.locator(".jp-Cell", has_text="compare_runs_widget(")
    assert cell.locator(".jp-OutputArea-output img").count() >= 1, "the export shows no comparison figure"
    assert "100%|" in page.inner_text("body") and not STALE_BAR.search(page.inner_text("body"))
    page.close()
