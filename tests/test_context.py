"""context.py / _images.py: notebook objects described with caps; images as PNG/JPEG bytes."""

from __future__ import annotations

import io
import sys
import tracemalloc

import numpy as np
import pandas as pd
import polars as pl
import pytest

from viagent_jupyter import context as ctx
from viagent_jupyter._images import DisplayRecorder, image_from, resolve_image, sniff
from viagent_jupyter.errors import ConfigValidationError


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    price = rng.normal(10, 2, n)
    price[::1000] = np.nan
    return pd.DataFrame({
        "price": price,
        "qty": np.arange(n, dtype=np.int64),
        "kind": pd.Categorical.from_codes(np.arange(n) % 3, ["a", "b", "c"]),
    })


def test_pandas_dataframe_description_has_shape_dtypes_head_nulls_summary() -> None:
    item = ctx.describe(_frame(2000), "sales")
    assert item.kind == "DataFrame" and item.name == "sales"
    text = item.text
    assert "2,000 rows × 3 columns" in text
    assert "price: float64" in text and "kind: category" in text
    assert "head:" in text and "qty" in text
    assert "price: 2" in text  # 2 NaNs in 2000 rows (every 1000th)
    assert "numeric summary" in text and "mean" in text
    assert not item.truncated and "sample" not in text


def test_ten_million_rows_described_in_bounded_memory_without_materialising() -> None:
    """The cap holds on a 10-million-row frame: the description reads a bounded sample, so the
    peak extra memory is a small fraction of the frame itself (~170 MB here)."""
    df = _frame(10_000_000)
    frame_bytes = int(df.memory_usage(deep=False).sum())
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        item = ctx.describe(df, "big", cap=3000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "10,000,000 rows" in item.text
    assert "sample of 100,000 of 10,000,000 rows" in item.text
    assert len(item.text) <= 3000
    # generous: 40 MB, against a frame of ~170 MB (a full isna() alone would be 30 MB more
    # than the sample, a copy of the frame 170 MB)
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MB"
    assert peak < frame_bytes / 4


def test_series_and_empty_frame() -> None:
    text = ctx.describe(pd.Series([1.0, None], name="s")).text
    assert text.startswith("pandas Series, shape 2 rows\n") and "s: 1" in text
    assert "0 rows × 0 columns" in ctx.describe(pd.DataFrame()).text


def test_polars_dataframe_and_lazyframe() -> None:
    df = pl.DataFrame({"a": [1, None, 3], "b": ["x", "y", "z"]})
    text = ctx.describe(df, "p").text
    assert "3 rows × 2 columns" in text and "a: Int64" in text and "a: 1" in text
    lazy = ctx.describe(df.lazy(), "lz").text
    assert "LazyFrame" in lazy and "rows not counted" in lazy


def test_numpy_array_shape_dtype_values() -> None:
    text = ctx.describe(np.arange(1_000_000, dtype=np.float32).reshape(1000, 1000), "a").text
    assert "shape (1000, 1000)" in text and "float32" in text
    assert "..." in text and "min 0.0, max 999990.0" in text
    assert "sample of 100,000" in text


def test_dict_list_truncated_json_and_cap_mark() -> None:
    data = {"rows": list(range(10_000)), "name": "x" * 5000, "nested": {"a": {"b": 1}}}
    item = ctx.describe(data, "d", cap=500)
    assert item.kind == "JSON" and item.truncated
    assert item.text.endswith("[truncated]") and len(item.text) <= 500
    assert '"rows": [0, 1, 2' in item.text
    small = ctx.describe([1, 2, 3], "l")
    assert small.text.endswith("[1, 2, 3]") and not small.truncated


def test_repr_llm_preferred_then_markdown_then_repr() -> None:
    class Both:
        def _repr_llm_(self) -> str:
            return "llm view"

        def _repr_markdown_(self) -> str:
            return "# md view"

    class Md:
        def _repr_markdown_(self) -> str:
            return "# md view"

    class Plain:
        def __repr__(self) -> str:
            return "Plain()"

    assert ctx.describe(Both()).text == "llm view"
    assert ctx.describe(Md()).text == "# md view"
    assert ctx.describe(Plain()).text == "Plain()"


def test_known_key_is_refused_and_never_shown() -> None:
    key = "sk-planted-secret-0123456789"
    items = [ctx.describe({"cfg": key}, "settings")]
    with pytest.raises(ConfigValidationError) as err:
        ctx.check_secrets(items, [key])
    assert "settings" in str(err.value) and key not in str(err.value)
    ctx.check_secrets([ctx.describe("harmless", "s")], [key])  # no refusal


def test_in_out_error_resolution() -> None:
    ns = {"In": ["", "x = 1", "df.head()"], "Out": {2: [1, 2]}, "x": 41}
    assert ctx.resolve("In[1]", ns).text == "x = 1"
    assert ctx.resolve("Out[2]", ns).text.endswith("[1, 2]")
    assert ctx.resolve("x + 1", ns).text == "42"
    with pytest.raises(ConfigValidationError, match="Out\\[9\\]"):
        ctx.resolve("Out[9]", ns)
    with pytest.raises(ConfigValidationError, match="nope"):
        ctx.resolve("nope", ns)
    try:
        {}["missing"]
    except KeyError as exc:
        sys.last_value = exc
        item = ctx.resolve("error", ns)
    assert "KeyError: 'missing'" in item.text and "Traceback" in item.text


def test_error_keeps_the_tail_when_capped() -> None:
    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise ValueError("the real cause")

    try:
        deep(60)
    except ValueError as exc:
        item = ctx.describe_error(exc, cap=150)
    assert item.truncated and item.text.startswith("… [truncated]")
    assert item.text.rstrip().endswith("ValueError: the real cause")


def _png(w: int = 4, h: int = 3) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_images_from_figure_pil_bytes_path(tmp_path: object) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([1, 2])
    part = image_from(fig)
    plt.close(fig)
    assert part.mime == "image/png" and (part.width, part.height) == (100, 50)
    assert image_from(Image.new("L", (7, 5))).width == 7
    jpeg = io.BytesIO()
    Image.new("RGB", (9, 8)).save(jpeg, format="JPEG")
    j = image_from(jpeg.getvalue())
    assert (j.mime, j.width, j.height) == ("image/jpeg", 9, 8)
    path = tmp_path / "p.png"  # type: ignore[operator]
    path.write_bytes(_png(6, 2))
    assert image_from(str(path)).width == 6
    assert part.describe().startswith("[image: PNG 100×50")
    with pytest.raises(ConfigValidationError, match="Only PNG and JPEG"):
        image_from(b"GIF89a....")
    with pytest.raises(ConfigValidationError, match="No such file"):
        image_from(str(tmp_path / "none.png"))  # type: ignore[operator]


def test_display_recorder_gives_last_and_cell_images() -> None:
    import base64

    class Pub:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def publish(self, data: object, metadata: object = None) -> None:
            self.seen.append(data)

    class Shell:
        display_pub = Pub()
        execution_count = 5

    shell = Shell()
    rec = DisplayRecorder().install(shell)
    shell.display_pub.publish({"text/plain": "<Figure>",
                               "image/png": base64.b64encode(_png(3, 3)).decode()})
    assert shell.display_pub.seen  # display still happens
    assert resolve_image("last", {}, rec).width == 3
    assert resolve_image("Out[5]", {"Out": {}}, rec).width == 3
    with pytest.raises(ConfigValidationError, match="Cell 6"):
        resolve_image("Out[6]", {"Out": {}}, rec)
    assert sniff(b"nope") is None


def test_no_heavy_imports_until_used(tmp_path: object) -> None:
    """Loading the modules of the notebook-as-context feature imports none of pandas, polars,
    numpy, matplotlib or PIL (they are detected by type(obj).__module__)."""
    import json
    import subprocess

    code = ("import sys, json\n"
            "import viagent_jupyter.context, viagent_jupyter._images, "
            "viagent_jupyter._structured, viagent_jupyter._attachments, "
            "viagent_jupyter._magic_context, viagent_jupyter._dryrun\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pandas', 'polars', 'numpy', 'matplotlib', 'PIL'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == []
