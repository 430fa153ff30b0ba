"""Time numconv against PyTorch and TensorFlow on the benchmark shape suite.

    python benchmarks/compare.py [--dtype float32 float64] [--shapes lenet1 ...]
                                 [--repeat N] [--png ratios.png] [--markdown]
                                 [--json raw.json] [--tf-python PATH]

Every library runs on 2 threads and sees the same inputs (made by
``shapes.make_arrays`` with a fixed seed).  Each measurement is the best of
``--repeat`` samples after a warm-up call that also compiles numconv's kernels.
PyTorch is timed in its native NCHW layout (inputs converted once, outside the
timed region; asymmetric 'same' padding by ``F.pad`` inside it); TensorFlow in
NHWC through ``tf.function``.  "fwd+bwd" is the forward pass plus the input,
kernel and bias gradients.  Before its times are trusted, each peer's forward
output and gradients are compared with numconv's on the timed inputs.

A peer that is not importable is skipped.  ``--tf-python`` / ``--torch-python``
run that peer in another interpreter (a separate virtualenv whose NumPy may
differ from ours), in the same overall run; it needs only NumPy there.

Ratios are (best peer time) / (numconv time): above 1 numconv is faster.
"""

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

if __package__:
    from .shapes import DTYPES, SHAPE_NAMES, SHAPES, conv_options, make_arrays
else:  # run as a script: benchmarks/ is sys.path[0]
    from shapes import DTYPES, SHAPE_NAMES, SHAPES, conv_options, make_arrays

THREADS = 2
REPORTED_PASSES = ("forward", "forward_backward")
PASS_LABELS = {"forward": "fwd", "forward_backward": "fwd+bwd"}
PEERS = ("torch", "tensorflow")
# A sample lasts at least this long: tiny shapes are called several times per sample.
MIN_SAMPLE_SECONDS = 0.02
# Pause before each measurement (see measure_case).
QUIET_SECONDS = 0.3
# Relative to the largest reference value; float32 sums of ~25k products differ
# between libraries by far less than this, a wrong padding or layout by far more.
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}


class Refused(Exception):
    """A library cannot compute a case (not implemented, or refused by design)."""


# ---------------------------------------------------------------- measuring


def best_seconds(function, repeat):
    """Best per-call time of ``function`` over ``repeat`` samples, and its first result.

    The first (untimed) call compiles, traces or loads caches; its result is
    returned for verification.  The calls per sample are set from a second,
    warm call: set from the first one, a library that compiles (numconv loads
    its kernels, TensorFlow traces) would get one call per sample on small
    shapes, timed while its caches and allocator are still warming, while a
    library with a fast first call got up to 100.
    """
    result = function()
    start = time.perf_counter()
    function()
    warm = time.perf_counter() - start
    calls = max(1, min(100, int(MIN_SAMPLE_SECONDS / max(warm, 1e-9))))
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best, result


def matmul_gflops(dtype, size=2048, repeat=3):
    """NumPy (BLAS) square matmul rate in GFLOP/s on THREADS threads: the reference rate."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(THREADS)
    except ImportError:
        limits = None
    try:
        seconds, _ = best_seconds(lambda: a @ b, repeat)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    return 2 * size**3 / seconds / 1e9


def _short_error(error):
    text = str(error)
    # TensorFlow wraps its reason: "{{function_node ...}} REASON [[node ...]] [Op:...]",
    # or in graphs "Detected at node NAME ... REASON [[...]]".
    node = re.search(r"Detected at node (\S+)", text)
    reason = text.split("[[", 1)[0].rsplit("}}", 1)[-1]
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    if node:
        message += f" (at {node.group(1)})"
    return f"{type(error).__name__}: {message}"[:160]


# ------------------------------------------------------------------ runners
#
# A runner's prepare(case, arrays) returns (forward, forward_backward, to_nhwc):
# two zero-argument callables to time, and a converter of their results into
# numconv's layouts (NHWC arrays; kernel gradient as (KH, KW, C_in/groups, F))
# so that results can be compared with numconv's.


class NumconvRunner:
    def __init__(self, data_format="channels_last"):
        import numba

        import numconv
        from numconv import nn

        numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
        self.nn = nn
        self.data_format = data_format
        self.name = "numconv" if data_format == "channels_last" else "numconv_cf"
        self.version = numconv.__version__

    def prepare(self, case, arrays):
        nn, data_format, options = self.nn, self.data_format, conv_options(case)
        x, kernel, bias, grad_output = arrays
        channels_first = data_format == "channels_first"
        if channels_first:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            grad_output = np.ascontiguousarray(grad_output.transpose(0, 3, 1, 2))

        def forward():
            return nn.conv2d(x, kernel, bias, data_format=data_format, **options)

        def forward_backward():
            output = nn.conv2d(x, kernel, bias, data_format=data_format, **options)
            grads = nn.conv2d_grads(
                x,
                kernel,
                grad_output,
                data_format=data_format,
                wrt=("input", "kernel", "bias"),
                **options,
            )
            return (output, *grads)

        def to_nhwc(result):
            if not isinstance(result, tuple):
                result = (result,)
            if not channels_first:
                return result
            result = list(result)
            for index in (0, 1)[: len(result)]:
                result[index] = result[index].transpose(0, 2, 3, 1)
            return tuple(result)

        return forward, forward_backward, to_nhwc


class TorchRunner:
    name = "torch"

    def __init__(self):
        import torch

        torch.set_num_threads(THREADS)
        try:
            torch.set_num_interop_threads(THREADS)
        except RuntimeError:  # only settable before torch's first parallel work
            pass
        self.torch = torch
        self.version = torch.__version__

    def prepare(self, case, arrays):
        torch = self.torch
        functional = torch.nn.functional
        x, kernel, bias, grad_output = arrays
        # Converted once, outside the timed region: NCHW and (F, C_in/groups, KH, KW)
        # are torch's native layouts.
        x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        kernel_t = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        bias_t = torch.from_numpy(bias.copy())
        grad_output_t = torch.from_numpy(np.ascontiguousarray(grad_output.transpose(0, 3, 1, 2)))
        (top, bottom), (left, right) = case.padding_amounts()
        symmetric = top == bottom and left == right
        padding = (top, left) if symmetric else (0, 0)

        def conv(inputs, weight, offset):
            if not symmetric:
                inputs = functional.pad(inputs, (left, right, top, bottom))
            return functional.conv2d(
                inputs,
                weight,
                offset,
                stride=case.strides,
                padding=padding,
                dilation=case.dilation,
                groups=case.groups,
            )

        def forward():
            with torch.no_grad():
                return conv(x_t, kernel_t, bias_t)

        leaves = [t.clone().requires_grad_(True) for t in (x_t, kernel_t, bias_t)]

        def forward_backward():
            output = conv(*leaves)
            grads = torch.autograd.grad(output, leaves, grad_output_t)
            return (output, *grads)

        def to_nhwc(result):
            if not isinstance(result, tuple):
                result = (result,)
            arrays = [t.detach().numpy() for t in result]
            arrays[0] = arrays[0].transpose(0, 2, 3, 1)
            if len(arrays) > 1:
                arrays[1] = arrays[1].transpose(0, 2, 3, 1)
                arrays[2] = arrays[2].transpose(2, 3, 1, 0)
            return tuple(arrays)

        return forward, forward_backward, to_nhwc


class TensorflowRunner:
    name = "tensorflow"

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        # Must happen before TensorFlow's first operation creates its thread pools.
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
        self.tf = tf
        self.version = tf.__version__

    def prepare(self, case, arrays):
        tf = self.tf
        x, kernel, bias, grad_output = (tf.constant(a) for a in arrays)
        padding = case.padding.upper()  # TF's own 'SAME' is the rule numconv follows

        def conv(inputs, weight, offset):
            output = tf.nn.conv2d(
                inputs, weight, strides=case.strides, padding=padding, dilations=case.dilation
            )
            return tf.nn.bias_add(output, offset)

        forward_graph = tf.function(conv)

        @tf.function
        def forward_backward_graph(inputs, weight, offset, upstream):
            with tf.GradientTape() as tape:
                tape.watch([inputs, weight, offset])
                output = conv(inputs, weight, offset)
            grads = tape.gradient(output, [inputs, weight, offset], output_gradients=upstream)
            return (output, *grads)

        def forward():
            return forward_graph(x, kernel, bias)

        def forward_backward():
            return forward_backward_graph(x, kernel, bias, grad_output)

        def to_nhwc(result):
            if not isinstance(result, (tuple, list)):
                result = (result,)
            return tuple(t.numpy() for t in result)

        return forward, forward_backward, to_nhwc


RUNNER_CLASSES = {"torch": TorchRunner, "tensorflow": TensorflowRunner}


# ------------------------------------------------------------ one runner's work


def measure_case(runner, case, dtype, arrays, repeat):
    """Times and NHWC outputs of one runner on one case.

    Returns {pass: (seconds or None, note or None)} and {pass: outputs or None}.
    """
    times, outputs = {}, {}
    try:
        forward, forward_backward, to_nhwc = runner.prepare(case, arrays)
    except Exception as error:  # noqa: BLE001  (a peer may refuse in many ways)
        note = _short_error(error)
        return {p: (None, note) for p in REPORTED_PASSES}, {p: None for p in REPORTED_PASSES}
    for pass_name, function in (("forward", forward), ("forward_backward", forward_backward)):
        # The previous measurement's thread pools (OpenBLAS's, oneDNN's, Numba's) keep
        # spinning for up to ~0.1 s after their last call and would take cores from
        # this one; let them go to sleep first.
        time.sleep(QUIET_SECONDS)
        try:
            seconds, result = best_seconds(function, repeat)
        except NotImplementedError:
            times[pass_name], outputs[pass_name] = (None, "not implemented"), None
            continue
        except Exception as error:  # noqa: BLE001
            times[pass_name], outputs[pass_name] = (None, _short_error(error)), None
            continue
        times[pass_name] = (seconds, None)
        outputs[pass_name] = to_nhwc(result)
    return times, outputs


def compare_outputs(reference, other, dtype):
    """Largest relative difference of ``other`` from ``reference`` and whether it is acceptable."""
    worst = 0.0
    for expected, actual in zip(reference, other):
        expected = np.asarray(expected, dtype=np.float64)
        actual = np.asarray(actual, dtype=np.float64)
        if expected.shape != actual.shape:
            return math.inf, False
        scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
        worst = max(
            worst, float(np.max(np.abs(expected - actual))) / scale if expected.size else 0.0
        )
    return worst, worst <= TOLERANCE[dtype]


# ----------------------------------------------------------- separate interpreter


def run_worker(peer, args):
    """--worker mode: time one peer, write times and outputs into --worker-dir."""
    runner = RUNNER_CLASSES[peer]()
    records = []
    for dtype in args.dtype:
        for name in args.shapes:
            case = SHAPES[name]
            times, outputs = measure_case(
                runner, case, dtype, make_arrays(case, dtype), args.repeat
            )
            for pass_name, (seconds, note) in times.items():
                records.append([dtype, pass_name, name, seconds, note])
            saved = {}
            for pass_name, result in outputs.items():
                for index, array in enumerate(result or ()):
                    saved[f"{pass_name}__{index}"] = np.asarray(array)
            np.savez(os.path.join(args.worker_dir, f"{dtype}_{name}.npz"), **saved)
            print(f"  {peer} {dtype} {name} done", file=sys.stderr, flush=True)
    with open(os.path.join(args.worker_dir, "times.json"), "w", encoding="utf-8") as handle:
        json.dump({"version": runner.version, "records": records}, handle)


def run_peer_elsewhere(peer, python, args, results):
    """Time ``peer`` in interpreter ``python`` and verify it against numconv here."""
    with tempfile.TemporaryDirectory(prefix=f"numconv-{peer}-") as folder:
        command = [
            python,
            os.path.abspath(__file__),
            "--worker",
            peer,
            "--worker-dir",
            folder,
            "--repeat",
            str(args.repeat),
            "--dtype",
            *args.dtype,
            "--shapes",
            *args.shapes,
        ]
        print(f"running {peer} in {python}", file=sys.stderr, flush=True)
        completed = subprocess.run(command, check=False)
        times_path = os.path.join(folder, "times.json")
        if completed.returncode != 0 or not os.path.exists(times_path):
            print(
                f"warning: {peer} in {python} failed (exit {completed.returncode}); skipped",
                file=sys.stderr,
            )
            return
        with open(times_path, encoding="utf-8") as handle:
            payload = json.load(handle)
        results.versions[peer] = payload["version"] + f" ({python})"
        for dtype, pass_name, name, seconds, note in payload["records"]:
            results.times[(peer, dtype, pass_name, name)] = (seconds, note)
        numconv = results.numconv_runner
        for dtype in args.dtype:
            for name in args.shapes:
                case = SHAPES[name]
                with np.load(os.path.join(folder, f"{dtype}_{name}.npz")) as saved:
                    for pass_name in REPORTED_PASSES:
                        count = sum(k.startswith(pass_name + "__") for k in saved.files)
                        if not count or results.times[(peer, dtype, pass_name, name)][0] is None:
                            continue
                        peer_output = [saved[f"{pass_name}__{i}"] for i in range(count)]
                        reference = _numconv_outputs(numconv, case, dtype, pass_name)
                        if reference is not None:
                            results.verification[(peer, dtype, pass_name, name)] = compare_outputs(
                                reference, peer_output, dtype
                            )


def _numconv_outputs(numconv, case, dtype, pass_name):
    try:
        forward, forward_backward, to_nhwc = numconv.prepare(case, make_arrays(case, dtype))
        return to_nhwc((forward if pass_name == "forward" else forward_backward)())
    except Exception:  # noqa: BLE001  (numconv's own failure is reported by its timing)
        return None


# ----------------------------------------------------------------- reporting


class Results:
    def __init__(self):
        self.times = {}  # (runner, dtype, pass, shape) -> (seconds or None, note or None)
        self.verification = {}  # (peer, dtype, pass, shape) -> (relative difference, ok)
        self.versions = {}
        self.matmul = {}  # dtype -> GFLOP/s
        self.numconv_runner = None

    def seconds(self, runner, dtype, pass_name, shape):
        return self.times.get((runner, dtype, pass_name, shape), (None, None))[0]

    def trusted_seconds(self, peer, dtype, pass_name, shape):
        seconds = self.seconds(peer, dtype, pass_name, shape)
        checked = self.verification.get((peer, dtype, pass_name, shape))
        return seconds if checked is not None and checked[1] else None

    def best_peer(self, dtype, pass_name, shape, peers):
        candidates = [
            (seconds, peer)
            for peer in peers
            if (seconds := self.trusted_seconds(peer, dtype, pass_name, shape)) is not None
        ]
        return min(candidates) if candidates else (None, None)


def geometric_mean(values):
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _cell_time(seconds, note, verified=None):
    if seconds is None:
        return "n/a" if note else "-"
    text = f"{seconds * 1e3:.2f}"
    if verified is not None and not verified[1]:
        text += " MISMATCH"
    return text


def _format_table(header, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results, args, peers):
    out = []
    out.append(
        f"numconv {results.versions.get('numconv', '?')} vs "
        + (", ".join(f"{p} {results.versions[p]}" for p in peers) or "no peer installed")
        + f"; {THREADS} threads; best of {args.repeat}; {platform.machine()} "
        f"{platform.processor() or ''}".rstrip()
    )
    notes = {}
    summary_rows = []
    for dtype in args.dtype:
        peak = results.matmul.get(dtype)
        for pass_name in REPORTED_PASSES:
            title = f"{dtype} {PASS_LABELS[pass_name]}"
            header = ["shape", "numconv ms", "GFLOP/s", "of matmul"]
            header += [f"{p} ms" for p in peers]
            header += ["best peer / numconv", "cf / cl"]
            rows, ratios, per_peer = [], [], {p: [] for p in peers}
            for name in args.shapes:
                case = SHAPES[name]
                seconds, note = results.times.get(("numconv", dtype, pass_name, name), (None, None))
                if note:
                    notes.setdefault(f"numconv: {note}", set()).add(f"{name} {dtype}")
                gflops = case.flops(pass_name) / seconds / 1e9 if seconds else None
                row = [
                    name,
                    _cell_time(seconds, note),
                    f"{gflops:.1f}" if gflops else "-",
                    f"{gflops / peak:.0%}" if gflops and peak else "-",
                ]
                for peer in peers:
                    peer_seconds, peer_note = results.times.get(
                        (peer, dtype, pass_name, name), (None, None)
                    )
                    verified = results.verification.get((peer, dtype, pass_name, name))
                    row.append(_cell_time(peer_seconds, peer_note, verified))
                    if peer_note:
                        notes.setdefault(f"{peer}: {peer_note}", set()).add(
                            f"{name} {dtype} {PASS_LABELS[pass_name]}"
                        )
                    trusted = results.trusted_seconds(peer, dtype, pass_name, name)
                    if trusted and seconds:
                        per_peer[peer].append(trusted / seconds)
                best, best_name = results.best_peer(dtype, pass_name, name, peers)
                ratio = best / seconds if best and seconds else None
                ratios.append(ratio)
                row.append(f"{ratio:.2f} ({best_name})" if ratio else "-")
                cf = results.seconds("numconv_cf", dtype, pass_name, name)
                row.append(f"{cf / seconds:.2f}" if cf and seconds else "-")
                rows.append(row)
            mean = geometric_mean(ratios)
            rows.append(
                ["geomean", "", "", "", *[""] * len(peers), f"{mean:.2f}" if mean else "-", ""]
            )
            peak_text = f"matmul {peak:.1f} GFLOP/s" if peak else "matmul not measured"
            out.append(f"\n### {title} ({peak_text})\n")
            out.append(_format_table(header, rows, args.markdown))
            summary_rows.append(
                [title, f"{mean:.2f}" if mean else "-"]
                + [f"{g:.2f}" if (g := geometric_mean(per_peer[p])) else "-" for p in peers]
            )
    out.append("\n### geometric means of peer time / numconv time (above 1: numconv faster)\n")
    out.append(_format_table(["case", "best peer", *peers], summary_rows, args.markdown))
    if results.verification:
        out.append(
            "\n### verification: max |peer - numconv| / max(1, max |numconv|), "
            "forward output and fwd+bwd output + 3 gradients\n"
        )
        header = ["shape", "dtype"] + [
            f"{p} {PASS_LABELS[s]}" for p in peers for s in REPORTED_PASSES
        ]
        rows = []
        for dtype in args.dtype:
            for name in args.shapes:
                row = [name, dtype]
                for peer in peers:
                    for pass_name in REPORTED_PASSES:
                        checked = results.verification.get((peer, dtype, pass_name, name))
                        row.append(
                            "-"
                            if checked is None
                            else f"{checked[0]:.1e}" + ("" if checked[1] else " MISMATCH")
                        )
                rows.append(row)
        out.append(_format_table(header, rows, args.markdown))
    if notes:
        out.append("\n### cases a library did not compute (n/a)\n")
        for note, where in sorted(notes.items()):
            out.append(f"- {note} [{', '.join(sorted(where))}]")
    out.append(
        "\nratio = best verified peer time / numconv time (above 1: numconv faster); "
        "'of matmul' = numconv GFLOP/s / NumPy 2048x2048 matmul GFLOP/s of the same dtype; "
        "cf / cl = numconv channels_first time / channels_last time."
    )
    return "\n".join(out)


def save_chart(results, args, peers, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart written", file=sys.stderr)
        return
    series = [(dtype, pass_name) for dtype in args.dtype for pass_name in REPORTED_PASSES]
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(8, 1.1 * len(args.shapes)), 4.5))
    for index, (dtype, pass_name) in enumerate(series):
        heights = []
        for name in args.shapes:
            seconds = results.seconds("numconv", dtype, pass_name, name)
            best, _ = results.best_peer(dtype, pass_name, name, peers)
            heights.append(best / seconds if best and seconds else 0.0)
        positions = [i + (index - (len(series) - 1) / 2) * width for i in range(len(args.shapes))]
        axes.bar(positions, heights, width, label=f"{dtype} {PASS_LABELS[pass_name]}")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xticks(range(len(args.shapes)), args.shapes, rotation=30, ha="right")
    axes.set_ylabel("best peer time / numconv time")
    axes.set_title(
        f"numconv vs {' / '.join(peers) or 'no peer'} on {THREADS} threads (above 1: numconv faster)"
    )
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"chart written to {path}", file=sys.stderr)


def save_json(results, args, path):
    payload = {
        "threads": THREADS,
        "repeat": args.repeat,
        "machine": platform.platform(),
        "versions": results.versions,
        "matmul_gflops": results.matmul,
        "times_seconds": [
            {"runner": r, "dtype": d, "pass": p, "shape": s, "seconds": t, "note": n}
            for (r, d, p, s), (t, n) in sorted(results.times.items())
        ],
        "verification": [
            {"peer": r, "dtype": d, "pass": p, "shape": s, "relative_difference": v, "ok": ok}
            for (r, d, p, s), (v, ok) in sorted(results.verification.items())
        ],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    print(f"raw results written to {path}", file=sys.stderr)


def load_json_runs(paths):
    """Results merged from --json files: each time is the best over all runs.

    On a shared machine a second run made later gives every library more
    chances at a quiet moment; a verification must hold in every run.
    """
    results = Results()
    runs = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        runs += payload["repeat"]
        results.versions.update(payload["versions"])
        for dtype, rate in payload["matmul_gflops"].items():
            results.matmul[dtype] = max(rate, results.matmul.get(dtype, 0.0))
        for record in payload["times_seconds"]:
            key = (record["runner"], record["dtype"], record["pass"], record["shape"])
            seconds, note = record["seconds"], record["note"]
            previous = results.times.get(key, (None, None))[0]
            if previous is not None and (seconds is None or previous <= seconds):
                continue
            results.times[key] = (seconds, note)
        for record in payload["verification"]:
            key = (record["peer"], record["dtype"], record["pass"], record["shape"])
            difference, ok = results.verification.get(key, (0.0, True))
            results.verification[key] = (
                max(difference, record["relative_difference"]),
                ok and record["ok"],
            )
    return results, runs


# ---------------------------------------------------------------------- main


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPE_NAMES), choices=SHAPE_NAMES)
    parser.add_argument(
        "--repeat", type=int, default=5, help="samples per measurement (best is kept)"
    )
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    parser.add_argument("--png", help="write a bar chart of the ratios to this file")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", help="write every raw time to this file")
    parser.add_argument(
        "--no-channels-first", action="store_true", help="skip numconv's channels_first timings"
    )
    parser.add_argument(
        "--from-json",
        nargs="+",
        metavar="FILE",
        help="measure nothing: report the best times of earlier --json runs",
    )
    parser.add_argument("--tf-python", help="run TensorFlow in this interpreter instead")
    parser.add_argument("--torch-python", help="run PyTorch in this interpreter instead")
    parser.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be a positive integer; received --repeat={args.repeat}")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, str(THREADS))  # reaches worker interpreters
    if args.worker:
        run_worker(args.worker, args)
        return 0
    if args.from_json:
        results, args.repeat = load_json_runs(args.from_json)
        peers = [p for p in args.peers if p in results.versions]
        print(report(results, args, peers))
        if args.png:
            save_chart(results, args, peers, args.png)
        return 0

    results = Results()
    numconv = NumconvRunner("channels_last")
    results.numconv_runner = numconv
    results.versions["numconv"] = numconv.version
    runners = [numconv]
    if not args.no_channels_first:
        runners.append(NumconvRunner("channels_first"))
    elsewhere = {"tensorflow": args.tf_python, "torch": args.torch_python}
    peers = []
    for peer in args.peers:
        if elsewhere[peer]:
            peers.append(peer)
            continue
        try:
            runner = RUNNER_CLASSES[peer]()
        except ImportError:
            print(f"{peer} is not installed: skipped", file=sys.stderr)
            continue
        results.versions[peer] = runner.version
        runners.append(runner)
        peers.append(peer)

    for dtype in args.dtype:
        results.matmul[dtype] = matmul_gflops(dtype)
        for name in args.shapes:
            case = SHAPES[name]
            arrays = make_arrays(case, dtype)
            reference = {}
            for runner in runners:
                times, outputs = measure_case(runner, case, dtype, arrays, args.repeat)
                for pass_name, value in times.items():
                    results.times[(runner.name, dtype, pass_name, name)] = value
                for pass_name, output in outputs.items():
                    if runner is numconv:
                        reference[pass_name] = output
                    elif output is not None and reference.get(pass_name) is not None:
                        results.verification[(runner.name, dtype, pass_name, name)] = (
                            compare_outputs(reference[pass_name], output, dtype)
                        )
                    # A runner measured before numconv produced its reference is
                    # left unverified, so its times are never trusted.
            progress = "  ".join(
                f"{runner.name} {_cell_time(*results.times[(runner.name, dtype, p, name)])}"
                for runner in runners
                for p in REPORTED_PASSES
            )
            print(f"{dtype} {name}: {progress} (ms; fwd, fwd+bwd)", file=sys.stderr, flush=True)

    for peer, python in elsewhere.items():
        if python and peer in peers:
            run_peer_elsewhere(peer, python, args, results)
    peers = [p for p in peers if p in results.versions]

    print(report(results, args, peers))
    if args.png:
        save_chart(results, args, peers, args.png)
    if args.json:
        save_json(results, args, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
