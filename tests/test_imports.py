"""Imports point one way (docs: DESIGN.md, "Layout and the direction of imports"):
``flows/cli -> {compiler, rtl_gen, sim, host} -> arch``.

Every ``.py`` file of sephw/, rtl_gen/, host/, sim/ and boards/ is parsed with ``ast``; every
import in it (module level and inside functions, relative imports resolved, ``from X import
y`` counted as ``X.y`` where that is a module of the project, ``importlib.import_module`` of a
constant name too) is mapped to its layer and checked against :data:`ALLOWED`. The host's
promise is checked by running it: ``import host.device`` in a fresh interpreter loads no
simulator, RTL generator, Amaranth or torch.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sephw", "rtl_gen", "host", "sim", "boards")

FLOWS = {"sephw.cli", "sephw.__main__"}   # the console-script entry; the rest of the flows live in sephw.flows
LAYERS = ("arch", "compiler", "model", "flows", "rtl_gen", "sim", "host", "boards")

# layer -> the layers it may import (its own included)
ALLOWED = {
    "arch": {"arch"},
    "host": {"host", "arch"},
    "rtl_gen": {"rtl_gen", "arch"},
    "compiler": {"compiler", "arch", "model", "boards"},
    "model": {"model", "arch"},
    "sim": {"sim", "rtl_gen", "host", "arch", "model"},     # model: the golden reference only
    "boards": {"boards"},
    "flows": set(LAYERS),
}


def layer(module: str) -> str | None:
    """The layer of a project module, None for anything else (stdlib, third party)."""
    top = module.split(".")[0]
    if top == "sephw":
        if module == "sephw.arch" or module.startswith("sephw.arch."):
            return "arch"
        if module == "sephw.compiler" or module.startswith("sephw.compiler."):
            return "compiler"
        if module in FLOWS or module == "sephw.flows" or module.startswith("sephw.flows."):
            return "flows"
        return "model"
    if top in ("rtl_gen", "sim", "host", "boards"):
        return top
    return None


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the checked packages (``pkg/__init__.py`` is
    ``pkg``)."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def imports(module: str, source: str, is_package: bool, known: set[str], filename: str = "<src>"):
    """``(line, imported module)`` of every import in ``source``, the source of ``module``
    (a package's ``__init__`` when ``is_package``). Relative imports are resolved against the
    module's package; ``from X import y`` yields ``X.y`` when that is in ``known``, else ``X``."""
    tree = ast.parse(source, filename)
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    raise ValueError(f"{filename}:{node.lineno}: relative import beyond the top-level package")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                target = ".".join(filter(None, [base, node.module]))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if sub in known else target))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in ("import_module", "__import__") and not (len(node.args) > 1 or node.keywords):
                out.append((node.lineno, node.args[0].value))
    return sorted(set(out))


def violations(module: str, source: str, is_package: bool, known: set[str], filename: str = "<src>") -> list[str]:
    """``file:line: module (layer) imports target (layer)`` for each import :data:`ALLOWED`
    does not allow."""
    src_layer = layer(module)
    out = []
    for line, target in imports(module, source, is_package, known, filename):
        dst = layer(target)
        if src_layer is not None and dst is not None and dst not in ALLOWED[src_layer]:
            out.append(f"{filename}:{line}: {module} ({src_layer}) imports {target} ({dst})")
    return out


def test_layers_import_one_way():
    mods = project_modules()
    known = set(mods)
    found = []
    for name, f in mods.items():
        found += violations(name, f.read_text(), f.name == "__init__.py", known, str(f.relative_to(ROOT)))
    assert not found, f"{len(found)} imports against the layering (DESIGN.md):\n" + "\n".join(found)


def test_every_module_has_a_layer():
    # a new top-level module under sephw/ must be placed: flows go in sephw/flows/ (the console-script
    # entry, sephw.cli and sephw.__main__, is listed in FLOWS)
    assert {layer(m) for m in project_modules()} <= set(LAYERS)
    assert layer("sephw.arch.link") == "arch" and layer("sephw.arch") == "arch"
    assert layer("sephw.compiler.passes") == "compiler" and layer("sephw.flows.compile") == "flows"
    assert layer("sephw.flows.run") == "flows" and layer("sephw.cli") == "flows"
    assert layer("sephw.reference") == "model" and layer("sephw") == "model"
    assert layer("numpy") is None and layer("amaranth.lib.data") is None and layer("simulate") is None


def test_checker_catches_violations():
    known = set(project_modules())
    src = ("import json\n"
           "from rtl_gen.top import Accelerator\n"
           "from sephw.arch import Manifest\n"
           "def open_board(port):\n"
           "    import sim.simboard\n"
           "    from sephw import reference\n"
           "    return importlib.import_module('sephw.compiler.passes')\n")
    got = violations("host.fake", src, False, known, "host/fake.py")
    assert got == ["host/fake.py:2: host.fake (host) imports rtl_gen.top (rtl_gen)",
                   "host/fake.py:5: host.fake (host) imports sim.simboard (sim)",
                   "host/fake.py:6: host.fake (host) imports sephw.reference (model)",
                   "host/fake.py:7: host.fake (host) imports sephw.compiler.passes (compiler)"]
    # relative imports resolve against the module's package (a package's __init__ is its own)
    rel = "from ..flows.run import open_device\nfrom .. import reference\nfrom .hw import CYCLE_MODEL\nfrom . import emit\n"
    assert violations("sephw.compiler.passes", rel, False, known, "p.py") == [
        "p.py:1: sephw.compiler.passes (compiler) imports sephw.flows.run (flows)"]
    assert [t for _, t in imports("sephw.compiler", rel, True, known)] == [
        "sephw.flows.run", "sephw.reference", "sephw.compiler.hw", "sephw.compiler.emit"]
    # arch is a leaf; the rtl generator never sees the compiler
    assert violations("sephw.arch.link", "from .records import Record\nfrom .. import intgraph\n", False, known) == [
        "<src>:2: sephw.arch.link (arch) imports sephw.intgraph (model)"]
    assert violations("rtl_gen.top", "from sephw.compiler.hw import X\n", False, known) == [
        "<src>:1: rtl_gen.top (rtl_gen) imports sephw.compiler.hw (compiler)"]
    assert violations("sephw.cli", "import rtl_gen.top, sim.runner, host.device\n", False, known) == []


def test_host_imports_no_simulator_generator_or_torch():
    # a real board is driven with pyserial (and numpy): importing the host runtime in a fresh
    # interpreter loads no simulator, RTL generator, Amaranth or torch, and of the project
    # only host/ and sephw.arch (with its parent package, which holds no code)
    code = ("import json, sys; import host.device, host.transport, host.protocol; "
            "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout)
    heavy = [m for m in loaded if m.split(".")[0] in ("amaranth", "torch", "cocotb", "cocotb_tools", "rtl_gen", "sim")]
    assert heavy == []
    assert [m for m in loaded if layer(m) is not None and m != "sephw" and layer(m) not in ("host", "arch")] == []
    assert "host.device" in loaded and "sephw.arch.link" in loaded
