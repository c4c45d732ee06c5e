"""The pages in docs/ run as written: every python/sh/bash/console block is executed.

The rules (stated for readers in docs/README.md):

* A fenced block whose info string starts with ``python``, ``sh``, ``bash`` or ``console`` is
  executed; ``text``, ``json``, ``yaml`` and ``mermaid`` blocks are shown data.
* A ``text`` block that follows an executed block with only blank lines between them is that
  block's expected standard output. ``...`` in it stands for any text (as doctest's ELLIPSIS);
  trailing spaces and leading/trailing blank lines are ignored.
* The blocks of one page run in order in one temporary working directory that holds links to
  the checkout's ``dmm_engine/``, ``deploy/`` and ``helm/`` and an empty ``docs/images/``, as
  if run from the root of a checkout without touching it. Python blocks share one namespace
  per page; sh blocks run with ``bash -euo pipefail``, the venv's ``bin`` first on ``PATH``,
  no inherited ``DMM_*`` variable except ``DMM_CACHE_DIR``, and the variables a block exports
  carry over to the page's next sh blocks (as in one terminal).
* ``file=NAME`` after the language writes the block to ``NAME`` instead of running it; a later
  executed block must use it (a test checks).
* ``live`` marks blocks that need a Kafka broker: tests/integration/test_docs_live.py runs their
  pages with them; here they are left out.
* ``no-run`` marks a block no test runs; its first line says why (``# not run by the tests:
  …``) and `NO_RUN` lists every such block, so their number cannot grow silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from dmm_engine import default_registry
from service.settings import settings_table
from tests.helpers import missing_under_ci

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(path.name for path in DOCS.glob("*.md"))
EXECUTED = ("python", "sh", "bash", "console")
SHOWN = ("text", "json", "yaml", "mermaid")
FLAGS = ("live", "no-run")
LINKED_FROM_CHECKOUT = ("dmm_engine", "deploy", "helm")
BLOCK_TIMEOUT_S = 120.0
NO_RUN_REASON = "# not run by the tests: "
# Every block no test runs: (page, its first command line). Keep it to a handful.
NO_RUN = {
    ("training.md", "dmm synth --out synth-out"),
    (
        "training.md",
        "dmm synth --preset general --grad-mode full --dense-steps 4000 --name synthesized-general",
    ),
    ("training.md", "dmm trainer"),
    ("operations.md", "helm install dmm helm/dmm-stream --namespace dmm --create-namespace \\"),
}
LIVE_PAGES = {"tutorial-neuron.md"}
FENCE = re.compile(r"^(`{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page.

    Attributes:
        page: the file name in docs/.
        line: 1-based line of the opening fence.
        lang: the first word of the info string.
        flags: ``live`` / ``no-run`` from the info string.
        file: the ``file=NAME`` target, if any.
        code: the block's content.
        expected: the content of the ``text`` block that shows its output, if any.
    """

    page: str
    line: int
    lang: str
    flags: frozenset[str] = frozenset()
    file: str | None = None
    code: str = ""
    expected: str | None = None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    @property
    def executed(self) -> bool:
        return self.lang in EXECUTED and self.file is None and "no-run" not in self.flags


def parse(text: str, page: str) -> list[Block]:
    """The fenced blocks of `text`, each executed one with its expected output attached.

    Raises:
        ValueError: an unclosed fence, an unknown info string or flag.
    """
    raw: list[tuple[Block, int]] = []  # block, line after its closing fence
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        ticks, info = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == ticks), None)
        if end is None:
            raise ValueError(f"docs/{page}:{i + 1}: fence {ticks}{info} is never closed")
        raw.append((_block(page, i + 1, info, "\n".join(lines[i + 1 : end]) + "\n"), end + 1))
        i = end + 1
    blocks: list[Block] = []
    k = 0
    while k < len(raw):
        block, after = raw[k]
        nxt = raw[k + 1] if k + 1 < len(raw) else None
        between = lines[after : nxt[0].line - 1] if nxt else []
        if (
            block.executed
            and nxt is not None
            and nxt[0].lang == "text"
            and not "".join(between).strip()
        ):
            blocks.append(dataclasses.replace(block, expected=nxt[0].code))
            k += 2
            continue
        blocks.append(block)
        k += 1
    return blocks


def _block(page: str, line: int, info: str, code: str) -> Block:
    words = info.split()
    if not words:
        raise ValueError(f"docs/{page}:{line}: a fence needs an info string ({EXECUTED + SHOWN})")
    lang, rest = words[0], words[1:]
    if lang not in EXECUTED + SHOWN:
        raise ValueError(
            f"docs/{page}:{line}: info string {lang!r} is not one of {EXECUTED + SHOWN}"
        )
    flags, file = set(), None
    for word in rest:
        if word.startswith("file="):
            file = word.removeprefix("file=")
        elif word in FLAGS:
            flags.add(word)
        else:
            raise ValueError(
                f"docs/{page}:{line}: unknown flag {word!r} (flags: {FLAGS}, file=NAME)"
            )
    if flags and lang not in EXECUTED:
        raise ValueError(f"docs/{page}:{line}: {sorted(flags)} on a {lang} block, which never runs")
    return Block(page, line, lang, frozenset(flags), file, code)


def page_blocks(page: str) -> list[Block]:
    return parse((DOCS / page).read_text(encoding="utf-8"), page)


def matches(expected: str, actual: str) -> bool:
    """`actual` equals `expected` where each ``...`` of `expected` stands for any text."""
    want, got = _normal(expected), _normal(actual)
    pattern = ".*?".join(re.escape(part) for part in want.split("..."))
    return re.fullmatch(pattern, got, re.S) is not None


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def console_script(code: str) -> tuple[str, str]:
    """A console block as (script, expected output): ``$ `` lines (with ``\\`` continuations)
    are the commands, every other line is output."""
    commands, output, continued = [], [], False
    for line in code.splitlines():
        if continued or line.startswith("$ "):
            commands.append(line if continued else line[2:])
            continued = line.endswith("\\")
        else:
            output.append(line)
    return "\n".join(commands) + "\n", "\n".join(output)


# --- running a page ---------------------------------------------------------------------------


@dataclass
class PageRun:
    """What running one page did: where, and how long each block took."""

    page: str
    work: Path
    seconds: dict[str, float] = field(default_factory=dict)


class DocFailure(AssertionError):
    """A block failed or printed something else than its page shows."""


def tools_bin() -> Path:
    """Where .ci/install-tools puts helm, kubeconform and promtool."""
    cache = os.environ.get("DMM_CACHE_DIR", "").strip() or "~/.cache/dmm-stream"
    return Path(cache).expanduser() / "tools" / "bin"


def shell_environment() -> dict[str, str]:
    """The environment sh blocks start with: no DMM_* but DMM_CACHE_DIR, the venv first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMM_")}
    if os.environ.get("DMM_CACHE_DIR"):
        env["DMM_CACHE_DIR"] = os.environ["DMM_CACHE_DIR"]
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, str(tools_bin()), env.get("PATH", "")])
    return env


def prepare_work_dir(base: Path) -> Path:
    """A working directory that looks like a checkout's root and writes nowhere else."""
    work = base / "work"
    (work / "docs" / "images").mkdir(parents=True)
    for name in LINKED_FROM_CHECKOUT:
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    return work


OPTIONAL_TOOLS = ("helm", "promtool")
"""Tools outside the venv (.ci/install-tools): a block that calls one is skipped without it,
except under CI, where it fails."""


def needs_missing_tool(block: Block, env: dict[str, str]) -> str | None:
    """The name of an optional tool the block calls that is not installed."""
    for tool in OPTIONAL_TOOLS:
        called = re.search(rf"(^|[\s|;(!]){tool}\s", block.code, re.M)
        if called and not shutil.which(tool, path=env["PATH"]):
            return tool
    return None


def run_page(page: str, base: Path, *, live: bool = False) -> PageRun:
    """Run every executed block of docs/`page` in order (``live`` ones only when asked).

    Raises:
        DocFailure: naming the block, what it printed and what the page shows.
    """
    return run_blocks(page, page_blocks(page), base, live=live)


def run_blocks(page: str, blocks: list[Block], base: Path, *, live: bool = False) -> PageRun:
    """Run `blocks` in order in a fresh working directory under `base` (see the module doc)."""
    run = PageRun(page, prepare_work_dir(base))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    env = shell_environment()
    for block in blocks:
        if block.file is not None:
            target = run.work / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            continue
        if not block.executed or ("live" in block.flags and not live):
            continue
        missing = needs_missing_tool(block, env)
        if missing:
            missing_under_ci(f"{block.where} calls {missing}, not installed (.ci/install-tools)")
        started = time.perf_counter()
        if block.lang == "python":
            out, err = _run_python(block, namespace, run.work)
        else:
            out, err, env = _run_shell(block, env, run.work, base)
        run.seconds[block.where] = time.perf_counter() - started
        expected = block.expected
        if block.lang == "console":
            expected = console_script(block.code)[1] or expected
        if expected is not None and not matches(expected, out):
            raise DocFailure(_report(block, "printed something else", out, err, expected))
    return run


def _run_python(block: Block, namespace: dict[str, object], work: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with _inside(work), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            exec(compile(block.code, block.where, "exec"), namespace)
        except Exception as exc:
            raise DocFailure(
                _report(block, f"raised {exc!r}", out.getvalue(), err.getvalue())
            ) from exc
    return out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _inside(work: Path) -> Iterator[None]:
    """cwd = `work` and `work` first on sys.path; modules imported from it are forgotten."""
    before, threads = os.getcwd(), torch.get_num_threads()
    sys.path.insert(0, str(work))
    os.chdir(work)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.chdir(before)
        sys.path.remove(str(work))
        torch.set_num_threads(threads)
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(str(work)):
                del sys.modules[name]


def _run_shell(
    block: Block, env: dict[str, str], work: Path, base: Path
) -> tuple[str, str, dict[str, str]]:
    """Run the block in bash; return stdout, stderr and the environment it leaves behind."""
    script = console_script(block.code)[0] if block.lang == "console" else block.code
    env_file = base / "env-after"
    wrapped = f"{script}\nenv -0 > {_quote(env_file)}\n"
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", wrapped],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise DocFailure(
            _report(block, f"did not end in {BLOCK_TIMEOUT_S:.0f} s", out, err)
        ) from None
    if done.returncode != 0:
        raise DocFailure(_report(block, f"exited {done.returncode}", done.stdout, done.stderr))
    after = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    for name in ("PWD", "OLDPWD", "SHLVL", "_"):
        after.pop(name, None)
    return done.stdout, done.stderr, after


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def _report(block: Block, what: str, out: str, err: str, expected: str | None = None) -> str:
    parts = [f"{block.where} ({block.lang}) {what}", "--- block:", block.code.rstrip()]
    if expected is not None:
        parts += ["--- the page shows:", expected.rstrip()]
    parts += ["--- stdout:", out.rstrip(), "--- stderr (tail):", "\n".join(err.splitlines()[-25:])]
    return "\n".join(parts)


# --- tests of the harness itself --------------------------------------------------------------

SAMPLE = textwrap.dedent(
    """\
    Intro.

    ```python
    print("a")
    ```

    ```text
    a
    ```

    ```sh live
    echo hi
    ```

    Not its output:

    ```text
    something else
    ```

    ```console
    $ echo one \\
        two
    one two
    ```

    ```python file=mod.py
    X = 1
    ```

    ```sh no-run
    # not run by the tests: an example
    sleep 999
    ```
    """
)


def test_parse_attaches_outputs_and_reads_flags() -> None:
    blocks = parse(SAMPLE, "sample.md")
    assert [(b.lang, b.line, sorted(b.flags), b.file) for b in blocks] == [
        ("python", 3, [], None),
        ("sh", 11, ["live"], None),
        ("text", 17, [], None),
        ("console", 21, [], None),
        ("python", 27, [], "mod.py"),
        ("sh", 31, ["no-run"], None),
    ]
    assert blocks[0].expected == "a\n" and blocks[1].expected is None
    assert [b.executed for b in blocks] == [True, True, False, True, False, False]
    assert console_script(blocks[3].code) == ("echo one \\\n    two\n", "one two")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("```python\nx = 1\n", "never closed"),
        ("```pyhton\nx\n```\n", "'pyhton' is not one of"),
        ("```sh quick\nx\n```\n", "unknown flag 'quick'"),
        ("```text live\nx\n```\n", "on a text block"),
        ("```\nx\n```\n", "needs an info string"),
    ],
)
def test_parse_refuses_what_it_would_not_run(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse(text, "bad.md")


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("a\nb\n", "a  \nb", True),
        ("x=... y=2", "x=0.0016100574 y=2", True),
        ("x=... y=2", "x=1 y=3", False),
        ("first\n...\nlast", "first\n1\n2\nlast\n", True),
        ("a", "a\nb", False),
        ("test string...", "test string...", True),
    ],
)
def test_matches_is_exact_but_for_ellipses(expected: str, actual: str, ok: bool) -> None:
    assert matches(expected, actual) is ok


def _run_text(text: str, base: Path, *, live: bool = False) -> PageRun:
    return run_blocks("sample.md", parse(textwrap.dedent(text), "sample.md"), base, live=live)


def test_blocks_share_files_variables_and_exports(tmp_path: Path) -> None:
    run = _run_text(
        """\
        ```python file=helper.py
        GREETING = "hello"
        ```

        ```python
        from helper import GREETING
        word = GREETING.upper()
        print(word)
        ```

        ```text
        HELLO
        ```

        ```python
        print(word, "again")
        ```

        ```text
        HELLO again
        ```

        ```sh
        export WHO=docs
        cat helper.py
        ```

        ```text
        GREETING = "hello"
        ```

        ```console
        $ echo "$WHO" "$(ls -d dmm_engine docs/images)"
        docs dmm_engine
        docs/images
        ```
        """,
        tmp_path,
    )
    assert len(run.seconds) == 4
    assert "helper" not in sys.modules  # modules imported from the work dir are forgotten


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "```sh\necho 41\n```\n\n```text\n42\n```\n",
            r"(?s)printed something else.*shows:\n42.*stdout:\n41",
        ),
        ("```python\nprint(41)\n```\n\n```text\n42\n```\n", r"(?s)shows:\n42.*stdout:\n41"),
        ("```sh\nfalse | true\necho unreachable\n```\n", "exited 1"),
        ("```sh\necho $UNSET_VARIABLE\n```\n", "exited 1"),
        ("```python\n1 / 0\n```\n", "raised ZeroDivisionError"),
        ("```console\n$ echo 41\n42\n```\n", r"(?s)shows:\n42.*stdout:\n41"),
    ],
)
def test_a_block_that_fails_or_prints_otherwise_fails_the_page(
    text: str, error: str, tmp_path: Path
) -> None:
    with pytest.raises(DocFailure, match=error):
        _run_text(text, tmp_path)


def test_live_blocks_run_only_when_asked(tmp_path: Path) -> None:
    text = "```sh live\necho live\n```\n\n```text\nlive\n```\n"
    assert _run_text(text, tmp_path / "unit").seconds == {}
    assert list(_run_text(text, tmp_path / "live", live=True).seconds) == ["docs/sample.md:1"]


def test_the_environment_keeps_no_dmm_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMM_KAFKA_BOOTSTRAP", "elsewhere:9092")
    monkeypatch.setenv("DMM_CACHE_DIR", "/tmp/cache")
    env = shell_environment()
    assert "DMM_KAFKA_BOOTSTRAP" not in env and env["DMM_CACHE_DIR"] == "/tmp/cache"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


# --- the pages --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PageRun]]:
    """Each page run once (lazily, by `_run_once`) and shared by the tests below."""
    yield {}


def _run_once(runs: dict[str, PageRun], page: str, factory: pytest.TempPathFactory) -> PageRun:
    if page not in runs:
        runs[page] = run_page(page, factory.mktemp(page.removesuffix(".md")))
    return runs[page]


def test_the_docs_exist() -> None:
    assert set(PAGES) >= {
        "README.md",
        "concepts.md",
        "tutorial-neuron.md",
        "training.md",
        "operations.md",
    }


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(
    page: str, runs: dict[str, PageRun], tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = _run_once(runs, page, tmp_path_factory)
    slowest = sorted(run.seconds.items(), key=lambda item: -item[1])[:3]
    print(f"{page}: {sum(run.seconds.values()):.1f} s; slowest {slowest}")


def test_no_run_blocks_are_the_listed_ones_and_say_why() -> None:
    found = set()
    for page in PAGES:
        for block in page_blocks(page):
            if "no-run" in block.flags:
                first, *rest = block.code.splitlines()
                assert first.startswith(NO_RUN_REASON), f"{block.where}: first line must say why"
                command = next(line for line in rest if line.strip())
                found.add((page, command))
    assert found == NO_RUN


def test_live_blocks_are_on_the_live_pages_only() -> None:
    pages = {page for page in PAGES for block in page_blocks(page) if "live" in block.flags}
    assert pages == LIVE_PAGES


def test_local_brokers_are_started_in_a_run_dir_of_their_own() -> None:
    # so that running the docs never touches a developer's default broker (<cache>/kafka-run)
    for page in PAGES:
        for block in page_blocks(page):
            for line in block.code.splitlines():
                if re.search(r"\bdmm kafka (start|stop|status)\b", line):
                    assert "--run-dir" in line, f"{block.where}: {line.strip()}"


def test_written_files_are_used_by_a_later_block() -> None:
    for page in PAGES:
        blocks = page_blocks(page)
        for i, block in enumerate(blocks):
            if block.file is None:
                continue
            stem = Path(block.file).stem
            later = "".join(b.code for b in blocks[i + 1 :] if b.executed)
            assert block.file in later or re.search(rf"\b{re.escape(stem)}\b", later), (
                f"{block.where}: {block.file} is written but no later executed block uses it"
            )


def github_anchors(text: str) -> set[str]:
    """The ``#anchors`` GitHub gives the headings of a Markdown text (outside code blocks)."""
    anchors, fenced = set(), False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_github_anchors_follow_the_heading_text() -> None:
    text = (
        "# (a) In Python\n## `dmm synth`\n```sh\n# not a heading\n```\n## Self and the hot swap\n"
    )
    assert github_anchors(text) == {"a-in-python", "dmm-synth", "self-and-the-hot-swap"}


def test_relative_links_images_and_anchors_exist() -> None:
    for page in PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (DOCS / file).resolve() if file else DOCS / page
            assert path.exists(), f"docs/{page}: link {target} points at nothing"
            if anchor and path.suffix == ".md":
                anchors = github_anchors(path.read_text(encoding="utf-8"))
                assert anchor in anchors, f"docs/{page}: {target}: no such heading in {path.name}"


def test_committed_images_are_regenerated_by_the_docs(
    runs: dict[str, PageRun], tmp_path_factory: pytest.TempPathFactory
) -> None:
    images = sorted((DOCS / "images").iterdir())
    assert images, "docs/images/ is empty"
    for image in images:
        pages = [p for p in PAGES if f"images/{image.name}" in (DOCS / p).read_text("utf-8")]
        assert pages, f"no page shows docs/images/{image.name}"
        made = []
        for page in pages:
            run = _run_once(runs, page, tmp_path_factory)
            made += [p for p in run.work.rglob(image.name) if not p.is_symlink()]
        assert made, f"no docs block regenerates docs/images/{image.name} (pages {pages})"
        head = made[0].read_bytes()[:400]
        assert b"<svg" in head or head.startswith(b"\x89PNG"), f"{made[0]} is not an SVG or PNG"


def _between_markers(page: str, name: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    assert begin in text and end in text, f"docs/{page} lacks the {name} markers"
    return text.split(begin, 1)[1].split(end, 1)[0]


def test_operations_settings_table_is_the_generated_one() -> None:
    assert _between_markers("operations.md", "settings-table") == settings_table(), (
        "regenerate it: python -m service.settings"
    )


def neuron_types_table() -> str:
    """The neuron-type table of docs/concepts.md, from the default registry."""
    registry = default_registry()
    rows = ["| type | inputs | outputs | up movement |", "|---|---|---|---|"]
    for name in registry:
        t = registry.get(name)
        cells = [", ".join(f"`{f}`" for f in fields) or "—" for fields in (t.inputs, t.outputs)]
        doc = t.doc.replace("|", "\\|")  # a pipe would end the table cell
        rows.append(f"| `{name}` | {cells[0]} | {cells[1]} | {doc} |")
    return "\n".join(rows) + "\n"


def test_concepts_neuron_table_is_the_registry() -> None:
    assert _between_markers("concepts.md", "neuron-types") == neuron_types_table()
