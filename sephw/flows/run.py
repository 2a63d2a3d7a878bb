"""``sephw run BUILD_DIR --port PORT --images N``: the compiled network on the device (a board's
serial port, or ``sim:BUILD_DIR`` for the simulated board), every logit compared bit-exactly
with the integer reference (sephw.reference).

The device must have been generated for the build's ArchConfig (its INFO ``arch_hash`` is
checked against the manifest's before anything is loaded); the memory images are loaded over
the link, then N test images of the manifest's dataset are streamed one by one (WRITE_INPUT,
RUN, READ_LOGITS).
Reports accuracy, per-image latency split into link time (the frames' bytes at the link's
baud) and compute (the device's cycle count, and that at the board's clock), and the host's
wall time per image. Exit code 1 if any logit differs from the reference.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["open_device", "run_on_device", "register_cli"]


def open_device(port: str, *, baud: int | None = None, timeout: float | None = None, tries: int = 3,
                progress: bool = True, log=print):
    """A :class:`host.device.Device` on ``port``: a board's serial port (``/dev/ttyUSB1``,
    ``COM3``; ``baud`` default 3,000,000) or ``sim:BUILD_DIR``, the simulated board of that
    build (:class:`sim.simboard.SimBoard`: Verilator, minutes to build the first time; its
    baud is the simulated one, ``baud`` is ignored; ``log`` gets its progress lines).
    ``timeout`` replaces the transport's fixed deadline margin (seconds); ``tries`` sends of
    a command before :class:`~sephw.arch.link.LinkError`; ``progress`` a bar while loading.

    The flows open devices here, not through ``Device.open``, because host/ drives serial
    ports with pyserial alone and never imports the simulator."""
    from host.device import Device
    from host.transport import SIM_PREFIX
    if not port.startswith(SIM_PREFIX):
        return Device.open(port, baud=baud, timeout=timeout, tries=tries, progress=progress)
    from sim.simboard import SimBoard
    t = SimBoard(port[len(SIM_PREFIX):], log=log)
    if timeout is not None:
        t.margin_s = float(timeout)
    return Device(t, tries=tries, progress=progress)


def run_on_device(build_dir, port: str, n_images: int, data_root: str | None = None, *, baud: int | None = None,
                  log=print, progress: bool = True) -> dict:
    """Load ``build_dir`` onto the device on ``port`` and run ``n_images`` test images;
    returns the summary dict (``bit_exact_images``, ``accuracy``, per-image stats, ...)."""
    from ..arch import Manifest
    from .simulate import test_images_and_reference
    d = Path(build_dir).resolve()
    man = Manifest.read(d)
    # the clock the board build showed (report.json, read before the device is opened); else
    # the device's nominal clock
    from .boardbuild import clock_of_build
    shown_hz, basis = clock_of_build(d, 0.0)
    ds, x, y, exp = test_images_and_reference(d, n_images, data_root, log, steps=5)
    exp = exp.numpy()
    log(f"[3/5] opening {port}")
    t0 = time.perf_counter()
    with open_device(port, baud=baud, progress=progress, log=log) as dev:
        open_s = time.perf_counter() - t0
        info = dev.info()
        dram = f", DRAM {info.ext_words * info.ext_word_bytes / 2**20:g} MiB" if info.ext_words else ""
        log(f"      device: {info.board}, arch {info.arch_hash}, {info.clock_hz / 1e6:g} MHz, "
            f"{info.baud} baud{dram}, protocol {info.protocol_version}, device version {info.device_version}")
        log(f"[4/5] loading {d.name} (arch {man.arch_hash})")
        ld = dev.load(d)
        log(f"      {ld['bytes']:,} bytes in {ld['frames']} LOAD frames, {ld['seconds']:.2f} s")
        log(f"[5/5] streaming {len(x)} images")
        got, stats = [], []
        for i in range(len(x)):
            got.append(dev.infer(x[i:i + 1].numpy())[0])
            stats += dev.last_stats
        retries = dev.retries
        time_scale = dev.transport.time_scale()
        sim_rate = dev.transport.status().get("rate") if hasattr(dev.transport, "status") else None
    got = np.stack(got) if got else np.zeros_like(exp)
    same = (got == exp).all(1)
    clock = info.clock_hz
    reached = shown_hz or clock
    link_s = [s["link_s"] for s in stats]
    cyc = [s["compute_cycles"] for s in stats]
    return {"build_dir": str(d), "port": port, "dataset": ds, "images": len(x),
            "bit_exact_images": int(same.sum()), "mismatched_images": [int(i) for i in np.flatnonzero(~same)],
            "accuracy": float((got.argmax(1) == y.numpy()).mean()) if len(x) else 0.0,
            "reference_accuracy": float((exp.argmax(1) == y.numpy()).mean()) if len(x) else 0.0,
            "device": {"board": info.board, "arch_hash": info.arch_hash, "clock_hz": clock,
                       "baud": info.baud, "device_version": info.device_version},
            "load_bytes": ld["bytes"], "load_frames": ld["frames"], "load_seconds": ld["seconds"],
            "open_seconds": open_s, "retries": retries,
            "link_bytes_per_image": stats[0]["link_bytes"] if stats else 0,
            "link_s_per_image": float(np.mean(link_s)) if stats else 0.0,
            "compute_cycles": cyc, "compute_s_per_image": float(np.mean(cyc)) / clock if stats else 0.0,
            "clock_reached_hz": reached, "clock_basis": basis,
            "compute_s_per_image_at_reached_clock": float(np.mean(cyc)) / reached if stats else 0.0,
            "predicted_cycles": man.cycles_per_inference,
            "wall_s_per_image": float(np.mean([s["wall_s"] for s in stats])) if stats else 0.0,
            "wall_seconds_per_device_second": time_scale, "simulated_cycles_per_s": sim_rate,
            "per_image": stats}


def cmd_run(a) -> int:
    from ..arch import ManifestError
    from ..arch.link import LinkError
    log = (lambda *s: print(*s, file=sys.stderr)) if a.json else print
    try:
        r = run_on_device(a.build_dir, a.port, a.images, a.data, baud=a.baud, log=log, progress=not a.json)
    except (LinkError, ManifestError, OSError, RuntimeError) as e:
        print(f"sephw run: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        n = r["images"]
        print(f"bit-exact: {r['bit_exact_images']}/{n} images (every logit equal to the reference)"
              + (f"; differing images: {r['mismatched_images'][:20]}" if r["mismatched_images"] else ""))
        print(f"accuracy {r['accuracy']:.2%} (reference {r['reference_accuracy']:.2%}) on {n} {r['dataset']} test images")
        dev = r["device"]
        if n:
            cyc = r["compute_cycles"]
            print(f"per image: link {r['link_s_per_image'] * 1e3:.3f} ms ({r['link_bytes_per_image']} bytes at "
                  f"{dev['baud']:,} baud) + compute {np.mean(cyc):,.0f} cycles = "
                  f"{r['compute_s_per_image'] * 1e3:.3f} ms at the device's {dev['clock_hz'] / 1e6:g} MHz, "
                  f"{r['compute_s_per_image_at_reached_clock'] * 1e3:.3f} ms at the {r['clock_reached_hz'] / 1e6:g} MHz "
                  f"the build reaches ({r['clock_basis']}) "
                  f"(predicted {r['predicted_cycles']} cycles); host wall {r['wall_s_per_image'] * 1e3:.1f} ms"
                  + (f" (simulated board, {r['simulated_cycles_per_s'] or 0:,.0f} simulated cycles/s)"
                     if r["simulated_cycles_per_s"] is not None else ""))
        print(f"load: {r['load_bytes']:,} bytes in {r['load_frames']} frames, {r['load_seconds']:.2f} s; "
              f"link retries: {r['retries']}")
    return 0 if r["bit_exact_images"] == r["images"] else 1


def register_cli(subparsers) -> None:
    """Add ``run BUILD_DIR --port PORT --images N [--data PATH] [--baud B] [--json]``."""
    p = subparsers.add_parser("run", help="load a build onto the board (or the simulated board) and run test "
                                          "images, bit-exact against the integer reference")
    p.add_argument("build_dir", help="build directory written by `sephw compile`")
    p.add_argument("--port", required=True, help="serial port of the board (/dev/ttyUSB1), or sim:BUILD_DIR")
    p.add_argument("--images", type=int, default=10, help="test images (default 10)")
    p.add_argument("--data", default=None, help="dataset root (default: the dataset's standard location)")
    p.add_argument("--baud", type=int, default=None, help="serial rate (default 3000000; ignored for sim:)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_run)
