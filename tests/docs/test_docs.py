"""The README and the documentation site stay true: tables agree with the registries, examples
run, every documented command line parses against the real command line, the CLI reference is
the one the app generates, and the site builds strictly."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from alore_bench.methods import METHODS
from alore_bench.params import trainable_without_head, vit_b16_trainable_without_head

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_readme_is_a_front_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


@pytest.mark.parametrize("source", [README, DOCS / "methods.md"], ids=["README", "methods"])
def test_method_tables_match_list_methods(source):
    rows = re.findall(r"^\| `([a-z_:0-9]+)` \| ([\d,]+) \| (yes|no) \|", source.read_text(), flags=re.M)
    table = {name: (int(count.replace(",", "")), mergeable == "yes") for name, count, mergeable in rows}
    assert set(table) == set(METHODS), "method table and registry differ"
    for name, (count, mergeable) in table.items():
        assert count == vit_b16_trainable_without_head(name), name
        assert mergeable == METHODS.get(name).mergeable, name


def test_the_support_matrix_matches_the_budgets_on_each_family():
    backbones = ("vit_b16", "swin_b", "convnext_b", "mixer_b16")
    text = page("backbones.md")
    section = text[text.index("## Methods on every family"):]
    rows = re.findall(r"^\| `([a-z_:0-9]+)` \| ([^|]+)\| ([^|]+)\| ([^|]+)\| ([^|]+)\|$", section, flags=re.M)
    matrix = {name: [cell.strip() for cell in cells] for name, *cells in rows}
    assert set(matrix) == set(METHODS), "support matrix and registry differ"
    for name, cells in matrix.items():
        for backbone, cell in zip(backbones, cells):
            count = trainable_without_head(name, backbone)
            if isinstance(count, int):
                assert cell == f"{count:,}", (name, backbone)
            else:
                assert cell == ("sites=mlp" if "sites=mlp" in count else "n/a"), (name, backbone, count)


def test_the_suites_table_lists_each_suites_sources():
    from alore_bench.data.suites import SUITES

    rows = re.findall(r"^\| `([a-z0-9_]+)` \| [^|]+ \| ([^|]+) \|$", page("suites.md"), flags=re.M)
    listed = {name: set(re.findall(r"`([a-z]+)", sources)) for name, sources in rows}
    assert listed == {name: set(SUITES.get(name).sources) for name in SUITES.names()}


def test_the_methods_page_names_every_alore_option():
    import dataclasses

    text = page("methods.md")
    section = text[text.index("ALoRE"):]
    missing = [f.name for f in dataclasses.fields(METHODS.get("alore").config_cls) if f"`{f.name}`" not in section]
    assert not missing, f"docs/methods.md does not describe ALoRE's {missing}"


def test_the_plugin_example_passes_the_contract():
    from alore_bench import conformance

    code = re.findall(r"```python\n(.*?)```", page("plugins.md"), flags=re.S)[0]
    assert len(code.splitlines()) < 40
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)  # noqa: S102  (our own docs' example)
    spec = namespace["METHOD"]
    for _label, check in conformance.CHECKS:
        check(spec, spec.default_config())


def test_the_python_examples_of_the_readme_and_the_api_page_run_as_written(tmp_path, monkeypatch, demo_data):
    monkeypatch.setenv("ALORE_BENCH_DATA", str(demo_data))
    monkeypatch.chdir(tmp_path)
    for source in (README, DOCS / "api.md"):
        code = re.findall(r"```python\n(.*?)```", source.read_text(encoding="utf-8"), flags=re.S)[0]
        exec(compile(code, str(source), "exec"), {})  # noqa: S102  (our own docs' example)
    assert list((tmp_path / "results").rglob("seed42.json"))


def command_lines():
    """Every `alore-bench ...` line in a code block of the README and the docs pages (the CLI
    reference's usage lines excluded: they are generated)."""
    found = []
    for source in [README, *PAGES]:
        if source.name == "cli.md":
            continue
        for block in re.findall(r"```[a-z]*\n(.*?)```", source.read_text(encoding="utf-8"), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("alore-bench "):
                    command = line.split("  #")[0].split(" # ")[0].split(" && ")[0].strip()
                    found.append(pytest.param(command, id=f"{source.name}:{command[:60]}"))
    return found


@pytest.mark.parametrize("line", command_lines())
def test_every_documented_command_line_parses(line):
    """The options exist, the choices are valid and the values have the right types (nothing runs)."""
    import typer
    import typer.main

    from alore_bench.cli import app

    command = typer.main.get_command(app)
    try:
        context = command.make_context("alore-bench", shlex.split(line)[1:], resilient_parsing=False)
    except typer.Exit:  # --version, --help: eager options that end parsing on purpose
        return
    while hasattr(command, "commands"):  # a group: its subcommand and the rest of the line
        rest = [*getattr(context, "_protected_args", getattr(context, "protected_args", [])), *context.args]
        if not rest:
            break
        name, command, args = command.resolve_command(context, rest)
        assert command is not None, f"{line}: no command {name}"
        context = command.make_context(name, list(args), parent=context)

def test_the_cli_reference_is_the_one_the_app_generates(tmp_path):
    out = tmp_path / "cli.md"
    subprocess.run([sys.executable, "-m", "typer", "alore_bench.cli.app", "utils", "docs", "--name", "alore-bench",
                    "--output", str(out)], check=True, capture_output=True)
    assert out.read_text(encoding="utf-8") == page("cli.md"), "docs/cli.md is stale: run `make docs`"


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
