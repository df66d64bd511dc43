"""Warren's Python kernel: one stateful interpreter context of a sandbox.

warren-init starts it and talks to it:
  - requests on stdin, one per cell: a JSON header line {"len": N, "env": {...}} followed by
    N bytes of code (UTF-8);
  - the cell's own output goes to stdout and stderr, as any program's;
  - structured events go to fd 3, one JSON object per line: "result" (the value of the
    cell's last expression) and "display" (figures, rich objects), each with a MIME bundle;
    "error" (name, value, traceback); and "done" when the cell is over. (warren-init itself
    reports the files a cell wrote, for every language.)
SIGINT interrupts a cell (KeyboardInterrupt) and keeps every variable."""
import ast
import base64
import json
import os
import signal
import sys
import time
import traceback

EVENTS = os.fdopen(3, "w", buffering=1, encoding="utf-8")
MIME_METHODS = (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"),
                ("image/svg+xml", "_repr_svg_"), ("image/png", "_repr_png_"),
                ("image/jpeg", "_repr_jpeg_"), ("application/json", "_repr_json_"),
                ("text/latex", "_repr_latex_"))


def emit(**event):
    sys.stdout.flush()
    sys.stderr.flush()
    EVENTS.write(json.dumps(event) + "\n")


def bundle(obj):
    """The MIME bundle of an object, as a notebook would show it."""
    data = {}
    if _is_figure(obj):
        png = _figure_png(obj)
        if png:
            data["image/png"] = png
    for mime, method in MIME_METHODS:
        fn = getattr(obj, method, None)
        if fn is None or isinstance(obj, type):
            continue
        try:
            value = fn()
        except Exception:
            continue
        if value is None:
            continue
        if isinstance(value, tuple):  # (data, metadata)
            value = value[0]
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif mime == "application/json" and not isinstance(value, str):
            value = json.dumps(value)
        data[mime] = value
    try:
        data["text/plain"] = repr(obj)
    except Exception as e:
        data["text/plain"] = f"<unrepresentable {type(obj).__name__}: {e}>"
    return data


def _is_figure(obj):
    mpl = sys.modules.get("matplotlib.figure")
    return mpl is not None and isinstance(obj, mpl.Figure)


def _figure_png(fig):
    import io
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", bbox_inches="tight")
    except Exception:
        return None
    return base64.b64encode(buf.getvalue()).decode()


def show_figures():
    """Every open matplotlib figure becomes display data, without the cell calling show()."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        fig = plt.figure(num)
        png = _figure_png(fig)
        if png:
            emit(type="display", data={"image/png": png, "text/plain": repr(fig)})
    plt.close("all")


def display(*objs):
    """What a notebook's display() does: rich output now, in order with the prints."""
    for obj in objs:
        emit(type="display", data=bundle(obj))


def error_event(exc):
    """name, value and a traceback of the cell's own frames (never this kernel's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    emit(type="error", name=type(exc).__name__, value=str(exc), traceback="".join(lines))


def run_cell(code, namespace, count):
    filename = f"<cell {count}>"
    tree = ast.parse(code, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        value = eval(compile(last, filename, "eval"), namespace)
        if value is not None:
            namespace["_"] = value
            if not _is_figure(value):
                emit(type="result", data=bundle(value))
            else:
                show_figures()  # the figure as display data, once


def read_request():
    header = sys.stdin.buffer.readline()
    if not header:
        return None
    req = json.loads(header)
    code = sys.stdin.buffer.read(req["len"]).decode("utf-8", "replace")
    return req, code


def main():
    os.environ.setdefault("MPLBACKEND", "Agg")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "display": display}
    sys.path.insert(0, "")
    count = 0
    emit(type="ready", language="python", pid=os.getpid())
    while True:
        try:
            got = read_request()
        except KeyboardInterrupt:  # an interrupt between cells interrupts nothing
            continue
        if got is None:
            return
        req, code = got
        count += 1
        saved = {k: os.environ.get(k) for k in req.get("env", {})}
        os.environ.update(req.get("env", {}))
        started = time.monotonic()
        status = "ok"
        try:
            run_cell(code, namespace, count)
        except KeyboardInterrupt as e:
            status = "error"
            error_event(e)
        except SystemExit as e:
            status = "ok" if e.code in (None, 0) else "error"
            if status == "error":
                error_event(e)
        except BaseException as e:
            status = "error"
            error_event(e)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:  # what the cell drew shows, even when it failed after drawing
            show_figures()
        except Exception:
            pass
        emit(type="done", status=status, execution_count=count,
             duration_ms=int((time.monotonic() - started) * 1000))


if __name__ == "__main__":
    main()
