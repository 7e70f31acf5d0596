"""Layers point one way: lower layers import no CLI module and read no settings."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from support import PACKAGES, REPO

# Imported for real in a fresh interpreter: the three the design names, the relations, the crawl's
# pipeline, the study's reader and the workbook. Every module of the lower layers is also checked
# statically (below).
LOWER = [
    "warehouse.db",
    "models.recluster",
    "transforms.features",
    "transforms.relations",
    "scrapers.pipelines",
    "readers.study_csv",
    "renderers.workbook",
]
LOWER_PACKAGES = ["warehouse", "models", "transforms", "scrapers", "readers", "renderers"]

# In a fresh interpreter: import the lower layers one by one, noting what each pulled in and
# which files were opened.
PROBE = """
import builtins, importlib, io, json, sys
opened = []
real_open = io.open
def spy(file, *args, **kwargs):
    opened.append(str(file))
    return real_open(file, *args, **kwargs)
builtins.open = io.open = spy
seen = {}
for module in sys.argv[1:]:
    before = set(sys.modules)
    importlib.import_module(module)
    seen[module] = sorted(set(sys.modules) - before)
print(json.dumps({"imported": seen, "opened": opened}))
"""
UPPER = {"kic", "pipeline", "flows", "sandbox", "typer", "pydantic_settings"}


def test_lower_layers_import_no_cli_and_read_no_settings(tmp_path):
    (tmp_path / "kic.toml").write_text("this is = not valid toml [\n")  # reading it would fail
    env = {"PATH": "", "KIC_CONFIG": str(tmp_path / "kic.toml"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *LOWER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    for module, imported in seen["imported"].items():
        upper = sorted(m for m in imported if m.split(".")[0] in UPPER)
        assert not upper, f"{module} imports {upper}"
    assert set(seen["imported"]) == set(LOWER)
    assert not [f for f in seen["opened"] if Path(f).name == "kic.toml"]


def test_scrapy_settings_are_plain_constants_that_match_the_product_defaults(tmp_path, monkeypatch):
    """A broken kic.toml must not break `scrapy list`; the spider's defaults are the product's."""
    (tmp_path / "kic.toml").write_text("this is = not valid toml [\n")
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"KIC_CONFIG": str(tmp_path / "kic.toml"), "PATH": ""},
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.split() == ["instagram"], result.stderr
    from pipeline.settings import Settings
    from scrapers import settings as scrapy_settings

    defaults = Settings()
    assert defaults.web_base_url == scrapy_settings.KIC_WEB_BASE_URL
    assert defaults.graph_base_url == scrapy_settings.KIC_GRAPH_BASE_URL
    assert defaults.web_app_id == scrapy_settings.KIC_WEB_APP_ID
    assert defaults.graph_api_version == scrapy_settings.KIC_GRAPH_API_VERSION
    assert defaults.posts_per_account == scrapy_settings.KIC_POSTS_PER_ACCOUNT
    assert defaults.tag_max_pages == scrapy_settings.KIC_TAG_MAX_PAGES
    assert defaults.timezone == scrapy_settings.KIC_TIMEZONE
    assert defaults.landing_root == scrapy_settings.KIC_LANDING_URL  # the crawl lands; it has no warehouse


def imports_of(package: str) -> list[tuple[str, str]]:
    """(module file, name imported) of every import statement under `package`, however nested."""
    found = []
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            found += [(str(path.relative_to(REPO)), name) for name in names]
    return found


def test_every_package_has_a_layer():
    """A package added to the product is placed above or below the line these tests draw (and is a
    regular package: a folder the .gitignore hid the __init__.py of still imported, as a namespace)."""
    assert sorted(PACKAGES) == sorted(LOWER_PACKAGES + [p for p in PACKAGES if p in UPPER])
    assert [p for p in PACKAGES if not (REPO / p / "__init__.py").is_file()] == []
    assert not set(LOWER_PACKAGES) & UPPER


def test_no_lower_module_imports_an_upper_layer():
    """Statically, every module under the lower packages (LOWER_PACKAGES)."""
    offenders = [
        f"{path}: {name}"
        for package in LOWER_PACKAGES
        for path, name in imports_of(package)
        if name.split(".")[0] in UPPER
    ]
    assert not offenders


def test_warehouse_imports_nothing_from_transforms_nor_any_other_lower_package():
    """warehouse/ is the storage mechanics below the relations transforms/ defines, and below the
    readers, the clusterers and the renderers, which sit on it."""
    others = set(LOWER_PACKAGES) - {"warehouse"}
    assert "transforms" in others
    offenders = [f"{path}: {name}" for path, name in imports_of("warehouse") if name.split(".")[0] in others]
    assert not offenders


def strings_of(package: str) -> list[tuple[str, str]]:
    """(module file, string) of every string literal under `package` but the docstrings."""
    found = []
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found += [
            (str(path.relative_to(REPO)), node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        ]
    return found


def test_warehouse_sql_names_no_relation_of_transforms():
    """Nor by name in its SQL: warehouse/ reads and writes the tables its migrations create; the
    views and macros transforms/ defines are given to it (view_sql(), a snapshot's `rows`)."""
    from transforms.relations import all_relations

    defined = [relation for relation in all_relations().values() if relation.kind != "table"]
    assert {"view", "table macro", "macro"} <= {relation.kind for relation in defined}
    named = [
        re.compile(
            rf"\b{re.escape(r.name.split('.')[-1])}\s*\(" if r.name.startswith("main.") else rf"\b{re.escape(r.name)}\b"
        )
        for r in defined
    ]
    offenders = [
        f"{path}: {pattern.pattern}"
        for path, text in strings_of("warehouse")
        for pattern in named
        if pattern.search(text)
    ]
    assert not offenders


def test_the_renderers_do_not_read_the_inputs_nor_cluster():
    """renderers/ draws what it is given: it reads no user file and fits nothing."""
    offenders = [
        f"{path}: {name}"
        for path, name in imports_of("renderers")
        if name.split(".")[0] in {"readers", "models", "scrapers"}
    ]
    assert not offenders
