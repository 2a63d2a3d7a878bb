"""Every command that reads a checkpoint (info, eval, quantize, compile, demo) or a build
directory (simulate, run) turns a foreign, corrupt, truncated or mismatched file into one line
on stderr naming the file and what is wrong, with exit status 2; a file carrying code is
refused without running it."""
import os
import re
import shutil

import pytest
import torch

from sephw import checkpoint, models
from sephw.cli import main

KW = dict(in_channels=1, num_classes=10, stem="small", width=0.25)


class _Code:
    """A pickled object whose loading would run a command (it must never be built)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _good(path):
    checkpoint.save(path, models.build("sepnet-small", **KW), "sepnet-small", dict(KW))
    return torch.load(path, weights_only=True)


# kind -> (writer(path, good checkpoint dict, marker), phrase the one-line error must hold)
CKPT_KINDS = {
    "truncated": (lambda p, ck, m, good: p.write_bytes(good.read_bytes()[:good.stat().st_size // 2]),
                  "not the zip archive torch.save writes"),
    "random_bytes": (lambda p, ck, m, good: p.write_bytes(os.urandom(3000)),
                     "not the zip archive torch.save writes"),
    "foreign_torch_file": (lambda p, ck, m, good: torch.save({"model": torch.zeros(3)}, p),
                           "not a sephw checkpoint"),
    "code": (lambda p, ck, m, good: torch.save(dict(ck, state=_Code(m)), p),
             "refused: the file holds objects other than plain tensors"),
    "unknown_arch_kwarg": (lambda p, ck, m, good: torch.save(dict(ck, arch_kwargs=dict(KW, depth=3)), p),
                           "arch_kwargs has 'depth', which architecture sepnet-small does not take"),
    "state_of_another_model": (lambda p, ck, m, good: torch.save(
        dict(ck, state=models.build("sepnet-small", **dict(KW, width=0.5)).state_dict()), p),
        "state does not match architecture sepnet-small"),
}

CKPT_READERS = {
    "info": lambda f, d: ["info", f],
    "eval": lambda f, d: ["eval", f, "--limit", "4"],
    "quantize": lambda f, d: ["quantize", f, "--calib", "4", "-o", str(d / "q.pt")],
    "compile": lambda f, d: ["compile", f, "--board", "arty-a7-35", "-o", str(d / "build"), "--no-board"],
    "demo": lambda f, d: ["demo", "--model", f, "--build", str(d / "demo"), "--images", "0", "--no-synth"],
}


def _one_line_error(capsys, argv, path, phrase):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(err) == 1, err
    assert re.match(rf"sephw( {argv[0]})?: error: {re.escape(str(path))}", err[0]), err[0]
    assert phrase in err[0], err[0]


@pytest.mark.parametrize("kind", list(CKPT_KINDS))
@pytest.mark.parametrize("reader", list(CKPT_READERS))
def test_checkpoint_readers_refuse_bad_files(reader, kind, tmp_path, capsys):
    good = tmp_path / "good.pt"
    ck = _good(good)
    bad, marker = tmp_path / f"{kind}.pt", tmp_path / "code_ran"
    write, phrase = CKPT_KINDS[kind]
    write(bad, ck, marker, good)
    if kind == "state_of_another_model" and reader == "compile":
        phrase = "holds no IntGraph"     # compile reads the IntGraph, not the float model
    _one_line_error(capsys, CKPT_READERS[reader](str(bad), tmp_path), bad, phrase)
    assert not marker.exists()


def test_quantized_checkpoint_with_a_malformed_graph(tmp_path, capsys):
    good = tmp_path / "good.pt"
    ck = _good(good)
    bad = tmp_path / "graph.pt"
    torch.save(dict(ck, intgraph={"format": "sephw-intgraph", "version": 1, "a_bits": 8, "nodes": [{"x": 1}]}), bad)
    _one_line_error(capsys, ["compile", str(bad), "--board", "arty-a7-35", "-o", str(tmp_path / "b"), "--no-board"],
                    bad, "its IntGraph is malformed or invalid")


# -- build directories ---------------------------------------------------------------------------

# kind -> (file, writer(path, marker), phrase)
BUILD_KINDS = {
    "intgraph_random": ("intgraph.pt", lambda p, m: p.write_bytes(os.urandom(2000)), "not a build's IntGraph"),
    "intgraph_code": ("intgraph.pt", lambda p, m: torch.save({"format": "sephw-intgraph", "nodes": _Code(m)}, p),
                      "refused: the file holds objects other than plain tensors"),
    "intgraph_foreign": ("intgraph.pt", lambda p, m: torch.save({"weights": torch.ones(2)}, p),
                         "its IntGraph is malformed or invalid"),
    "intgraph_truncated": ("intgraph.pt", lambda p, m: p.write_bytes(p.read_bytes()[:100]),
                           "not a build's IntGraph"),
    "manifest_not_json": ("manifest.json", lambda p, m: p.write_text("{ not json"), "not readable JSON"),
    "manifest_missing": ("manifest.json", lambda p, m: p.unlink(), "is missing"),
    "report_not_object": ("report.json", lambda p, m: p.write_text("[1, 2]"), "not a report of `sephw compile`"),
}
SIMULATE_ONLY = {
    "report_missing": ("report.json", lambda p, m: p.unlink(), "cannot read it"),
    "schedule_not_yaml": ("schedule.yaml", lambda p, m: p.write_text("instructions: [\n  - {op: "), "not valid YAML"),
    "schedule_foreign": ("schedule.yaml", lambda p, m: p.write_text("hello: 1\n"), "no list of instructions"),
    "program_truncated": ("program.bin", lambda p, m: p.write_bytes(p.read_bytes()[:40]), "program.bin"),
}
BUILD_READERS = {
    "simulate": lambda d: ["simulate", str(d), "--images", "1"],
    # the files are read before the port is opened: a port that does not exist is never reached
    "run": lambda d: ["run", str(d), "--port", "/dev/ttyNONE_sephw", "--images", "1"],
}


@pytest.mark.parametrize("kind,reader", [(k, r) for k in BUILD_KINDS for r in BUILD_READERS] +
                         [(k, "simulate") for k in SIMULATE_ONLY])
def test_build_directory_readers_refuse_bad_files(sepnet_build, kind, reader, tmp_path, capsys):
    _, src, _ = sepnet_build
    d = tmp_path / "build"
    shutil.copytree(src, d)
    name, write, phrase = {**BUILD_KINDS, **SIMULATE_ONLY}[kind]
    marker = tmp_path / "code_ran"
    write(d / name, marker)
    _one_line_error(capsys, BUILD_READERS[reader](d), d / name, phrase)
    assert not marker.exists()
