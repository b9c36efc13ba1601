"""The overlap report: report.json (every number), report.md (CLIP's overlap table), report.html
(the table plus thumbnails of the closest and the borderline train/eval pairs), and two plots."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from datetime import datetime, timezone

from wit.io import folders

THUMB = 128
COLUMNS = ["Dataset", "Overlap", "Clean acc", "Overlap acc", "All acc", "All − Clean", "p-value", "99.5% CI (Overlap acc)"]


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _p(x: float | None) -> str:
    return "—" if x is None else (f"{x:.3g}" if x >= 1e-4 else f"{x:.1e}")


def table_rows(sets: dict) -> list[list[str]]:
    """One row per eval set, in COLUMNS order, formatted as in the CLIP paper (percent)."""
    rows = []
    for name, s in sets.items():
        ci = "—" if s["ci_low"] is None else f"[{_pct(s['ci_low'])}, {_pct(s['ci_high'])}]"
        rows.append([name, f"{_pct(s['contamination'])}% ({s['n_overlap']}/{s['n_all']})", _pct(s["acc_clean"]),
                     _pct(s["acc_overlap"]), _pct(s["acc_all"]), _pct(s["all_minus_clean"], True), _p(s["p_value"]), ci])
    return rows


def markdown(doc: dict) -> str:
    meta = doc["meta"]
    lines = [
        "# Data overlap analysis (CLIP §5)", "",
        f"Training images indexed: {meta['train_images']:,} in {meta['train_shards']} shard(s). "
        f"Detector: {meta['detector']['descriptor']}; an eval image is in Overlap when its nearest training "
        "image is within the set's threshold (Hamming bits)" + (
            ", or when dedupe's copy detector matches a training image to it" if meta["detector"].get("copy_detector")
            else "") + ".",
        f"Model: {meta['model'] or 'no model (contamination only)'}.", "",
        "| " + " | ".join(COLUMNS) + " | Threshold |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for row, s in zip(table_rows(doc["sets"]), doc["sets"].values()):
        lines.append("| " + " | ".join(row) + f" | {s['threshold']} |")
    notes = [f"- {n}: {s['model_note']}" for n, s in doc["sets"].items() if s["model_note"]]
    found = {n: s["matched_by"] for n, s in doc["sets"].items() if s.get("matched_by")}
    if found:
        lines += ["", "Overlap found by (descriptor: images): " + "; ".join(
            f"{n}: " + ", ".join(f"{b} {c}" for b, c in by.items()) for n, by in found.items()) + "."]
    lines += ["", "Accuracies are zero-shot top-1 in percent; the p-value is one-tailed (binomial, Overlap "
              "accuracy against the Clean accuracy as the null); the interval is Clopper-Pearson at 99.5%.", ""]
    if notes:
        lines += ["Notes:", *notes, ""]
    lines += ["Plots: contamination.png, accuracy_difference.png. Pairs to check the thresholds: report.html.", ""]
    return "\n".join(lines)


def _thumb(img) -> str:
    img = img.convert("RGB")
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _images(results) -> dict[tuple[str, str], str]:
    """Thumbnails of every image the pairs show: ('eval:<set>', item) and ('train', shard/key)."""
    from PIL import Image

    from wit.dedupe.index import iter_eval_images
    from wit.io import tars
    from wit.overlap.detector import IMAGE_EXTS

    out: dict[tuple[str, str], str] = {}
    train_wanted: dict[str, set[str]] = defaultdict(set)
    for r in results:
        want = {p["item"] for p in r.pairs}
        for p in r.pairs:
            train_wanted[p["train_shard"]].add(p["train_key"])
        if want:
            for item, data in iter_eval_images(r.path):
                if item in want:
                    out[(f"eval:{r.name}", item)] = _thumb(Image.open(io.BytesIO(data)))
    for shard, keys in train_wanted.items():
        for parts in tars.shard_samples([shard]):
            key = parts["__key__"]
            data = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
            if key in keys and data is not None:
                out[("train", f"{shard}/{key}")] = _thumb(Image.open(io.BytesIO(data)))
    return out


_CSS = """body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}
.pairs{display:flex;flex-wrap:wrap;gap:12px}.pair{border:1px solid #ccc;padding:6px;font-size:12px;width:270px}
.pair.overlap{border-color:#c00;background:#fee}.pair img{width:128px;height:128px;object-fit:contain;background:#eee}"""


def html_report(doc: dict, results, thumbs: dict) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS + ["Threshold"])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + f"<td>{s['threshold']}</td></tr>"
                   for row, s in zip(table_rows(doc["sets"]), doc["sets"].values()))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Overlap report</title><style>{_CSS}</style>"
             "</head><body><h1>Data overlap analysis (CLIP §5)</h1>",
             f"<p>{doc['meta']['train_images']:,} training images; model: {e(str(doc['meta']['model'] or 'none'))}."
             "</p>", f"<table><tr>{head}</tr>{body}</table>",
             "<p><img src='contamination.png' height=260> <img src='accuracy_difference.png' height=260></p>"]
    for r in results:
        parts.append(f"<h2>{e(r.name)} — threshold {r.threshold} bits</h2><p>Left: eval image; right: its nearest "
                     "training image. Red: counted as Overlap.</p><div class='pairs'>")
        for p in r.pairs:
            ev = thumbs.get((f"eval:{r.name}", p["item"]), "")
            tr = thumbs.get(("train", f"{p['train_shard']}/{p['train_key']}"), "")
            cls = "pair overlap" if p["overlap"] else "pair"
            parts.append(f"<div class='{cls}'><img src='{ev}'> <img src='{tr}'><br>distance {p['distance']} "
                         f"({e(p['why'])})<br>eval: {e(p['item'])}<br>train: {e(str(p['train_key']))}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _no_difference_note(s: dict) -> str:
    """Why a set has no Overlap − Clean point."""
    if s["model_note"]:
        return s["model_note"]
    if not s["n_overlap"]:
        return "no overlapping images"
    if s["n_overlap"] == s["n_all"]:
        return "no clean images"
    return "no accuracy"


def plots(doc: dict, out: str) -> list[str]:
    """contamination.png (per set, with n) and accuracy_difference.png (Overlap − Clean with its 99.5% interval)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["sets"])
    sets = list(doc["sets"].values())
    ticks = [f"{n}\n(d ≤ {s['threshold']})" for n, s in zip(names, sets)]
    width = max(5.0, 1.5 + 1.1 * len(names))
    written = []
    fig, ax = plt.subplots(figsize=(width, 3.8))
    pct = [100 * s["contamination"] for s in sets]
    bars = ax.bar(range(len(names)), pct, color="#c44", width=0.6)
    for bar, s, v in zip(bars, sets, pct):
        ax.annotate(f"{s['n_overlap']}/{s['n_all']}\n{v:.1f}%", (bar.get_x() + bar.get_width() / 2, v),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), ticks, fontsize=8)
    ax.set_ylim(0, max(pct + [1.0]) * 1.35)
    ax.set_xlabel("eval set (pHash distance threshold, bits)")
    ax.set_ylabel("contamination (% of eval images)")
    ax.set_title("\n".join(textwrap.wrap("Eval images with a near-duplicate in the training shards "
                                          "(n overlapping / n in set)", 48)), fontsize=10)
    fig.tight_layout()
    written.append(_save(fig, out, "contamination.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(width, 3.8))
    ax.axhline(0, color="#888", lw=0.8)
    with_acc = [(i, s) for i, s in enumerate(sets) if s["overlap_minus_clean"] is not None]
    if with_acc:
        xs = [i for i, _ in with_acc]
        ys = [100 * s["overlap_minus_clean"] for _, s in with_acc]
        lo = [100 * (s["overlap_minus_clean"] - s["diff_ci_low"]) for _, s in with_acc]
        hi = [100 * (s["diff_ci_high"] - s["overlap_minus_clean"]) for _, s in with_acc]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=4, label="Overlap − Clean (99.5% CI)")
        ax.plot(xs, [100 * s["all_minus_clean"] for _, s in with_acc], "s", color="#c44", label="All − Clean")
        ax.legend(fontsize=8, loc="upper right")
    for i, s in enumerate(sets):
        if s["overlap_minus_clean"] is None:
            ax.text(i, 0, "\n".join(textwrap.wrap(_no_difference_note(s), 16)), ha="center", va="center",
                    fontsize=7, color="#555", bbox=dict(boxstyle="round", fc="white", ec="#bbb"))
    if not with_acc:
        ax.set_ylim(-10, 10)
    ax.set_xticks(range(len(names)), [f"{n}\n(n = {s['n_overlap']}/{s['n_all']})" for n, s in zip(names, sets)],
                  fontsize=8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xlabel("eval set (n overlapping / n in set)")
    ax.set_ylabel("zero-shot top-1 difference (points)")
    ax.set_title("Accuracy on overlapping vs clean eval images", fontsize=10)
    fig.tight_layout()
    written.append(_save(fig, out, "accuracy_difference.png"))
    plt.close(fig)
    return written


def _save(fig, out: str, name: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    url = folders.join(out, name)
    folders.atomic_write_bytes(url, buf.getvalue())
    return url


def write_report(out: str, results, meta: dict) -> dict:
    """Write every report file under ``out``; return the summary a pipeline step records."""
    sets = {}
    for r in results:
        pairs = [{k: v for k, v in p.items() if k != "set"} for p in r.pairs]
        by = Counter(b for b in r.items.column("matched_by").to_pylist() if b)
        sets[r.name] = {"path": r.path, "threshold": r.threshold, "model_note": r.model_note,
                        **r.stats.as_dict(), "matched_by": dict(sorted(by.items())), "pairs": pairs}
    doc = {"meta": {**meta, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}, "sets": sets}
    folders.write_json(folders.join(out, "report.json"), doc)
    folders.atomic_write_bytes(folders.join(out, "report.md"), markdown(doc).encode())
    plots(doc, out)
    folders.atomic_write_bytes(folders.join(out, "report.html"), html_report(doc, results, _images(results)).encode())
    return {
        "sets": len(sets),
        "train_images": meta["train_images"],
        "contamination": {n: s["contamination"] for n, s in sets.items()},
        "n_overlap": {n: s["n_overlap"] for n, s in sets.items()},
        "all_minus_clean": {n: s["all_minus_clean"] for n, s in sets.items()},
        "report": folders.join(out, "report.json"),
    }
