"""The experiment's report: ``results.json`` (every number, seeds, config, command), ``report.html`` (table,
plots, image grids) and a plain-text table for the terminal."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

import numpy as np

from maskpurify.evaluation.figures import GAP, PAGE_WIDTH, fit_scale, labelled_grid
from maskpurify.fileio import atomic_write_json, atomic_write_text, save_image
from maskpurify.metrics.gaze import binned_errors
from maskpurify.masks import overlay

COLUMNS = (("mean°", lambda r: r["gaze"]["mean_deg"], "{:.2f}"),
           ("median°", lambda r: r["gaze"]["median_deg"], "{:.2f}"),
           ("≤5°", lambda r: 100 * r["gaze"]["within_5deg"], "{:.1f}%"),
           ("≤7°", lambda r: 100 * r["gaze"]["within_7deg"], "{:.1f}%"),
           ("gap closed", lambda r: 100 * r["gap_closure"], "{:.0f}%"),
           ("pupil shift px", lambda r: r.get("pupil_shift_px"), "{:.2f}"),
           ("attn SSIM", lambda r: r.get("attention_ssim"), "{:.3f}"),
           ("KID", lambda r: r.get("kid"), "{:.3f}"),
           ("ms/img", lambda r: r.get("ms_per_image"), "{:.3f}"))


def _cell(row: dict[str, Any], getter: Any, fmt: str) -> str:
    value = getter(row)
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else fmt.format(value)


def _fixed_width(table: list[list[str]]) -> str:
    """Rows of cells (the first is the header) as terminal text: first column left-aligned, the rest right-aligned,
    a dashed line under the header."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def text_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of the main numbers, one line per method."""
    header = ["method"] + [c[0] for c in COLUMNS]
    return _fixed_width([header, *([r["method"]] + [_cell(r, g, f) for _, g, f in COLUMNS] for r in rows)])


def conditions_table(unseen: dict[str, Any]) -> list[list[str]]:
    """The conditions outside the wild preset as rows of cells: condition, each method's mean error (°), ours' gap
    closure and the segmenter's IoU; the first row is the header."""
    methods = list(next(iter(unseen["conditions"].values()))["mean_error_deg"])
    rows = [["condition", *(f"{m} °" for m in methods), "ours: gap closed", "segmenter IoU", "passed through"]]
    for name, c in unseen["conditions"].items():
        gap = "—" if c["gap_closed"] is None else f"{100 * c['gap_closed']:.0f}%"
        rows.append([name, *(f"{c['mean_error_deg'][m]:.2f}" for m in methods), gap, f"{c['segmenter_miou']:.3f}",
                     str(c["passed_through"])])
    return rows


def conditions_text(unseen: dict[str, Any]) -> str:
    """:func:`conditions_table` as fixed-width text for the terminal."""
    return _fixed_width(conditions_table(unseen))


def _conditions_section(unseen: dict[str, Any] | None, pictures: list[str]) -> str:
    """The methods and their controls under conditions outside the wild preset (no choice was made on them)."""
    if not unseen:
        return ""
    shown = (f'<p>One row per condition (named on the left), the same eyes in every row; for each eye: as rendered | '
             f'inferred mask | ours.</p>' + "".join(f'<img src="{html.escape(p)}">' for p in pictures)
             if pictures else "")
    table = conditions_table(unseen)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table[1:])
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(c['description'])}</li>"
                    for k, c in unseen["conditions"].items())
    return (f"<h2>Conditions the methods never saw</h2><p>{unseen['n']} other eyes (seed {unseen['seed']}), the same "
            "eyes under each condition, masks inferred by the segmenter; floor (the same eyes rendered synthetic): "
            f"<b>{unseen['floor_deg']:.2f}°</b>. A method that fits the wild preset rather than real eyes falls "
            f"apart here.</p><table><tr>{head}</tr>{body}</table><ul>{items}</ul>{shown}")


def _plots(out: Path, rows: list[dict[str, Any]], arrays: dict[str, Any], logs: dict[str, Path]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    errors = arrays["errors"]
    colours = {"reference": "tab:grey", "mask only": "tab:brown", "baseline": "tab:orange", "ablation": "tab:purple",
               "ours": "tab:green", "oracle": "tab:olive", "control": "tab:cyan"}
    files = []

    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(names)), 4))
    means = [errors[n].mean() for n in names]
    sems = [errors[n].std() / np.sqrt(len(errors[n])) for n in names]
    ax.bar(range(len(names)), means, yerr=sems, capsize=3, color=[colours[r["group"]] for r in rows])
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_ylabel("mean angular error (deg), ± s.e.m.")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=110)
    plt.close(fig)
    files.append("errors.png")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    main = [r for r in rows if r["group"] != "ablation" or r["method"] == "ours, no mask"]
    for row in main:
        e = np.sort(errors[row["method"]])
        axes[0].plot(e, np.arange(1, len(e) + 1) / len(e), label=row["method"])
    axes[0].set_xlim(0, 20)
    axes[0].set_xlabel("angular error (deg)")
    axes[0].set_ylabel("cumulative share")
    axes[0].legend(fontsize=7)
    truth = np.degrees(arrays["wild"].gaze)
    for ax, col, label in ((axes[1], 0, "pitch"), (axes[2], 1, "yaw")):
        for row in main:
            bins = binned_errors(errors[row["method"]], truth[:, col])
            ax.plot([(b["lo_deg"] + b["hi_deg"]) / 2 for b in bins], [b["mean_deg"] for b in bins], "o-", ms=3,
                    label=row["method"])
        ax.set_xlabel(f"true gaze {label} (deg)")
        ax.set_ylabel("mean error (deg)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    files.append("curves.png")

    if logs:
        files.append(_training_plot(out / "training.png", logs))
    return files


#: the most training logs side by side in training.png; more go on further rows
TRAINING_COLUMNS = 3


def _training_plot(path: Path, logs: dict[str, Path]) -> str:
    """One panel per training log (every logged loss over the steps, log scale), at most
    :data:`TRAINING_COLUMNS` panels a row, about 4x3 inches each in a figure 12 inches wide (the page's width at
    100 dpi), each panel's legend under it; a key keeps its colour in every panel."""
    import matplotlib.pyplot as plt

    columns = min(TRAINING_COLUMNS, len(logs))
    n_rows = -(-len(logs) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(12, 3.8 * n_rows), squeeze=False, layout="constrained")
    colours: dict[str, Any] = {}
    palette = [*plt.rcParams["axes.prop_cycle"].by_key()["color"], "black", "darkgoldenrod", "navy", "lime",
               "magenta", "teal", "salmon", "slateblue"]
    for ax, (name, log) in zip(axes.flat, logs.items()):
        with open(log, newline="") as handle:
            table = list(csv.DictReader(handle))
        steps = [float(r["step"]) for r in table]
        for key in table[0] if table else []:
            if key in ("step", "sec_per_step", "phase") or key.startswith(("val", "lr")):
                continue
            try:
                values = [float(r[key]) for r in table]
            except (TypeError, ValueError):
                continue
            if any(values):
                colour = colours.setdefault(key, palette[len(colours) % len(palette)])
                ax.plot(steps, values, label=key, color=colour, lw=1.2)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.has_data():  # under the panel, never over a curve
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(4, len(ax.get_lines())),
                      frameon=False, handlelength=1.5, columnspacing=1.0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(logs):]:
        ax.set_visible(False)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _pages(reference: list[str], rest: list[str], limit: int) -> list[list[str]]:
    """Columns split into pictures of at most ``limit`` columns: ``rest`` shared out evenly, each picture with the
    ``reference`` columns too (the first one leading, the others closing)."""
    room = max(1, limit - len(reference))
    k = max(1, -(-len(rest) // room))
    size = -(-len(rest) // k) if rest else 0
    parts = [rest[j * size:(j + 1) * size] for j in range(k)] if rest else [[]]
    return [reference[:1] + part + reference[1:] for part in parts]


#: the most example columns in one picture: what fits the page at 2x
MAX_COLUMNS = 9


def _example_pages(arrays: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The example grid's pictures as (what they show, column names): inputs, baselines, ours, oracle and the
    synthetic twin first; then the ablations next to the wild input and ours."""
    groups = {r["method"]: r["group"] for r in rows}
    outputs = list(arrays["outputs"])
    main = [m for m in outputs if groups.get(m) != "ablation"]
    ablations = [m for m in outputs if groups.get(m) == "ablation"]
    def numbered(what: str, parts: list[list[str]]) -> list[tuple[str, list[str]]]:
        return [(what + (f" ({k + 1} of {len(parts)})" if len(parts) > 1 else ""), cols)
                for k, cols in enumerate(parts)]

    pages = numbered("inputs, baselines, ours, oracle and the same eye rendered synthetic",
                     _pages(["wild input", "synthetic"], ["mask", *main], MAX_COLUMNS))
    if ablations:
        reference = ["wild input", *(["ours"] if "ours" in outputs else [])]
        pages += numbered("ablations, next to the wild input and ours", _pages(reference, ablations, MAX_COLUMNS))
    return pages


def _example_tile(arrays: dict[str, Any], column: str, i: int) -> np.ndarray:
    if column == "wild input":
        return arrays["wild"].images[i]
    if column == "mask":
        return overlay(arrays["wild"].images[i], arrays["masks_in"][i])
    if column == "synthetic":
        return arrays["synthetic"].images[i]
    return arrays["outputs"][column][i]


def _grid(out: Path, stem: str, arrays: dict[str, Any], rows: list[dict[str, Any]], indices: np.ndarray
          ) -> list[tuple[str, str, list[str]]]:
    """The example eyes, one per row, as pictures ``stem.png``, ``stem_2.png``, ... each with a header naming its
    columns; returns (file name, what it shows, columns) per picture."""
    made = []
    for k, (what, columns) in enumerate(_example_pages(arrays, rows)):
        name = f"{stem}.png" if k == 0 else f"{stem}_{k + 1}.png"
        tiles = [[_example_tile(arrays, c, i) for c in columns] for i in indices]
        scale = fit_scale(len(columns), tiles[0][0].shape[1])
        save_image(out / name, labelled_grid(tiles, columns, scale))
        made.append((name, what, columns))
    return made


def _conditions_grid(out: Path, examples: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """One row per condition (named on the left), the same eyes in every row: as rendered | the inferred mask |
    ours, eye by eye; as many eyes a picture as fit the page at 3x (``conditions.png``, ``conditions_2.png``...)."""
    first = next(iter(examples.values()))
    n_eyes, width = len(first["input"]), first["input"].shape[2]
    label = 96
    per = max(1, (PAGE_WIDTH - label) // (3 * (3 * width + GAP)))
    names = []
    for k, start in enumerate(range(0, n_eyes, per)):
        eyes = range(start, min(n_eyes, start + per))
        columns = [f"eye {j + 1}: {what}" for j in eyes for what in ("as rendered", "inferred mask", "ours")]
        tiles = [[cell for j in eyes for cell in (e["input"][j], overlay(e["input"][j], e["mask"][j]), e["ours"][j])]
                 for e in examples.values()]
        name = "conditions.png" if k == 0 else f"conditions_{k + 1}.png"
        save_image(out / name, labelled_grid(tiles, columns, fit_scale(len(columns), width, label + GAP),
                                             row_labels=list(examples), row_label_width=label))
        names.append(name)
    return names


def _segmenter_summary(seg: dict[str, Any]) -> str:
    """One line per test domain: the segmenter's IoU against the renderer's exact masks."""
    lines = []
    for domain, summary in seg.items():
        ious = ", ".join(f"{name} {value:.3f}" for name, value in summary["iou"].items())
        lines.append(f"{html.escape(domain)}: mean IoU over sclera, iris, pupil <b>{summary['miou']:.3f}</b> "
                     f"({html.escape(ious)})")
    return "<br>".join(lines) or "not measured"


def _real_eyes_section(real: dict[str, Any] | None) -> str:
    """The real-eye check set: crops cut from photos that ship inside packages, FaceMesh masks as reference."""
    if not real:
        return ""
    sheet = Path(real["contact_sheet"]).name if real.get("contact_sheet") else None
    return (f"<h3>Real eyes (check set, never trained on)</h3><p>{real['n']} eye crops from photos shipped in "
            f"scikit-image and insightface, FaceMesh eyelid and iris as reference: mean IoU <b>{real['mean_iou']:.3f}"
            f"</b> (sclera {real['iou_sclera']:.3f}, iris {real['iou_iris']:.3f}, pupil {real['iou_pupil']:.3f}); "
            f"iris centre {real['iris_centre_error_px']:.2f} px from FaceMesh's (median "
            f"{real['iris_centre_error_median_px']:.2f}); {real['flagged']} flagged by the eye check.</p>"
            + (f'<p>Columns: crop | reference mask | inferred mask</p><img src="{html.escape(sheet)}">' if sheet else ""))


def _colour_section(rows: list[dict[str, Any]], synthetic: dict[str, Any] | None) -> str:
    """Region by region: how far each output's mean colour sits from the synthetic set's (ΔE, CIELab)."""
    measured = [r for r in rows if r.get("region_colour") and r.get("inputs", "wild") == "wild"]
    if not synthetic or not measured:
        return ""
    names = list(synthetic)
    head = "".join(f"<th>{html.escape(n)} ΔE</th><th>{html.escape(n)} L sd</th>" for n in names)
    ref = "".join(f"<td>0</td><td>{synthetic[n]['sd_lab'][0]:.1f}</td>" for n in names)
    body = f"<tr><td>synthetic set (target)</td>{ref}</tr>"
    for r in measured:
        cells = "".join(f"<td>{r['region_colour'][n]['delta_e_to_synthetic']:.1f}</td>"
                        f"<td>{r['region_colour'][n]['sd_lab'][0]:.1f}</td>" if n in r["region_colour"]
                        else "<td>—</td><td>—</td>" for n in names)
        cls = ' class="ours"' if r["group"] == "ours" else ""
        body += f"<tr{cls}><td>{html.escape(r['method'])}</td>{cells}</tr>"
    return ("<h2>Style, region by region</h2><p>Distance (ΔE, CIE76) between each region's mean CIELab colour in a "
            "method's outputs and in the synthetic set, and the spread of its lightness (L sd); regions are the "
            "renderer's masks of the depicted eyes (test labels, used only to measure). Lower ΔE: closer to "
            f"synthetic.</p><table><tr><th>method</th>{head}</tr>{body}</table>")


#: What each number of benchmarks/baseline_spread.py's JSON is, in words (an unknown key is shown as it is).
_SPREAD_LABELS = {
    "randomised": "domain-randomised estimator", "simgan": "SimGAN (synthetic → wild refiner, estimator retrained)",
    "simgan-reverse": "SimGAN-style refiner wild → synthetic",
    "raw_deg": "error on raw wild eyes (°)", "on_ours_deg": "error on our purified eyes (°)",
    "deg": "error on the refined wild eyes (°)",
    "kid_to_wild_before": "KID to the wild set, before", "kid_to_wild_after": "after",
    "kid_to_synthetic_before": "KID to the synthetic set, before", "kid_to_synthetic_after": "after",
    "mean_abs_change_u8": "mean change per pixel (0–255)", "unchanged_pixel_share": "unchanged pixels",
    "final_d_acc_real": "discriminator accuracy, real", "final_d_acc_fake": "fake",
    "checkerboard_share": "checkerboard share of the change",
}


def _spread_section(spread: dict[str, Any] | None) -> str:
    """The baselines over seeds, as measured by benchmarks/baseline_spread.py (not rerun by the demo)."""
    if not spread:
        return ""
    items = []
    for name, values in spread["spread"].items():
        cells = "; ".join(f"{html.escape(_SPREAD_LABELS.get(k, k))} {v['mean']:.2f} ± {v['sd']:.2f}"
                          for k, v in values.items())
        items.append(f"<li><b>{html.escape(_SPREAD_LABELS.get(name, name))}</b>: {cells}</li>")
    return (f"<h2>Baselines over seeds {html.escape(str(spread['seeds']))} (mean ± sd)</h2><p>Measured by "
            f"<code>{html.escape(spread['command'])}</code> on the same test eyes; not rerun by this report.</p>"
            f"<ul>{''.join(items)}</ul>")


#: the headline table's rows, in this order (then every oracle row): the floor, raw, ours and its controls
HEADLINE = ("synthetic (floor)", "raw", "ours", "mask alone", "control: grey image", "control: clean synthetic")


def headline_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the headline table: :data:`HEADLINE` (those present, in that order), then the oracle rows."""
    by_name = {r["method"]: r for r in rows}
    return [by_name[name] for name in HEADLINE if name in by_name] + [r for r in rows if r["group"] == "oracle"]


def _real_photos_section(real: dict[str, Any] | None) -> str:
    """Face photos shipped inside installed packages, through the shipped pipeline (or why they are missing)."""
    head = "<h2>Real photos</h2>"
    if not real:
        return ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in real.get("notes", []))
    notes = f"<ul>{notes}</ul>" if notes else ""
    if not real.get("picture"):
        return f"{head}<p>Not shown: {html.escape(real.get('missing') or 'no picture')}.</p>{notes}"
    verdicts = "".join(
        f"<li><b>{html.escape(p['name'])}</b> ({html.escape(p['source'])}): " + "; ".join(
            f"{html.escape(e['side'])} eye " + ("purified" if e["purified"] else
                                               f"passed through: {html.escape(str(e['reason']))}")
            for e in p["eyes"]) + "</li>" for p in real.get("photos", []))
    return (f"{head}<p>Face photos that ship inside installed packages, each run through the shipped pipeline "
            "(<code>Pipeline.load(device='cpu').run</code>: FaceMesh finds the eyes and gives their masks, the "
            "eye check decides, the shipped purifier purifies). Per photo: the eye region before | after (enlarged, "
            "pixelated), then per eye the working-size crop, the mask used and the purified output, shown as in "
            "the photo (the networks see the right eye mirrored). These are real eyes: nothing here was trained "
            f"or tuned on them.</p><ul>{verdicts}</ul><img src=\"{html.escape(real['picture'])}\">{notes}")


def write_report(out_dir: str | Path, results: dict[str, Any], logs: dict[str, Path] | None = None,
                 examples: int = 8) -> Path:
    """Write results.json, the plots, the image grids and report.html into ``out_dir``; returns the HTML path.

    ``results["real_photos"]``: what :func:`~maskpurify.evaluation.real_photos_panel.write_real_photos` returns
    (its picture already in ``out_dir``); when the results carry nothing about it, it is made here (a few
    seconds: the shipped pipeline on three photos, skipped with a note without MediaPipe)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = results.pop("_arrays")
    rows = results["rows"]
    if results.get("real_photos") is None:
        from maskpurify.evaluation.real_photos_panel import write_real_photos

        try:
            results["real_photos"] = write_real_photos(out / "real_photos.png")
        except Exception as exc:  # noqa: BLE001 - the report never fails for want of this picture
            results["real_photos"] = {"picture": None, "photos": [], "notes": [],
                                      "missing": f"the pipeline failed on them ({type(exc).__name__}: {exc})"}
    atomic_write_json(out / "results.json", results)
    plots = _plots(out, rows, arrays, logs or {})
    n = len(arrays["wild"].images)
    fixed = np.arange(min(examples, n))
    key = "ours" if "ours" in arrays["errors"] else "raw"
    worst = np.argsort(arrays["errors"][key])[::-1][:examples]
    fixed_pictures = _grid(out, "examples_fixed", arrays, rows, fixed)
    worst_pictures = _grid(out, "examples_worst", arrays, rows, worst)
    conditions_pictures = _conditions_grid(out, arrays["conditions"]) if arrays.get("conditions") else []

    def table_html(selected: list[dict[str, Any]]) -> str:
        head = "".join(f"<th>{html.escape(c[0])}</th>" for c in COLUMNS)
        body = ""
        for r in selected:
            cells = "".join(f"<td>{_cell(r, g, f)}</td>" for _, g, f in COLUMNS)
            cls = ' class="ours"' if r["group"] == "ours" else ""
            body += (f"<tr{cls}><td title=\"{html.escape(r['description'])}\">{html.escape(r['method'])}</td>"
                     f"{cells}</tr>")
        return f"<table><tr><th>method</th>{head}</tr>{body}</table>"

    def pictures_html(pictures: list[tuple[str, str, list[str]]]) -> str:
        return "".join(f'<p class="what">{html.escape(what)}</p><img src="{html.escape(name)}">'
                       for name, what, _ in pictures)

    main = [r for r in rows if r["group"] != "ablation" or r["method"] == "ours, no mask"]
    ablation = [r for r in rows if r["group"] in ("ablation", "ours")]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in results.get("notes", []))
    descriptions = "".join(f"<li><b>{html.escape(r['method'])}</b>: {html.escape(r['description'])}</li>"
                           for r in rows)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>maskpurify report</title><style>
body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
tr.ours{{background:#e8f6e8;font-weight:bold}} img{{max-width:100%;image-rendering:pixelated;display:block;
margin:0.5em 0}} p.what{{margin:1em 0 0.2em;font-style:italic}}
code{{background:#f4f4f4;padding:2px 4px}}</style></head><body>
<h1>Purifying wild eyes: the side-by-side</h1>
<p>Gaze estimator trained only on synthetic eyes, scored on {n} wild test eyes (seed {results['config']['test']['seed']}).
Floor (same eyes, synthetic style): <b>{results['floor_deg']:.2f}°</b>; raw wild: <b>{results['raw_deg']:.2f}°</b>.
Gap closure = (raw − method) / (raw − floor). Masks given to mask-based methods: <b>{results['mask_source']}</b>.
The wild eyes stand in for a user's real images: their exact masks appear only in the rows marked <i>oracle</i>.</p>
<h2>Headline</h2>
<p>A row is believed only next to its controls: <i>mask alone</i> (what the inferred mask carries without the image),
<i>control: grey image</i> (a blank image with the same mask) and <i>control: clean synthetic</i> (should stay at
the floor, {results['floor_deg']:.2f}°); the <i>oracle</i> rows use the renderer's exact masks (a ceiling, not a
result).</p>
{table_html(headline_rows(rows))}
<p>Training budget: {html.escape(results.get('budget', ''))}<br>
Command: <code>{html.escape(results['command'])}</code></p>
<h2>Methods</h2>{table_html(main)}
<h2>Ablations: what each term contributes</h2>{table_html(ablation)}
{_conditions_section(results.get('unseen_conditions'), conditions_pictures)}
{_colour_section(rows, results.get('synthetic_region_colour'))}
{_spread_section(results.get('baseline_spread'))}
<h2>Masks from the image</h2><p>{_segmenter_summary(results.get('segmenter', {}))}<br>
{results.get('eye_check_flagged', 0)} wild test eyes had an implausible automatic mask (the eye check) and were passed
through unpurified by every method that uses inferred masks, as <code>maskpurify purify --masks auto</code> does.</p>
{_real_eyes_section(results.get('real_eyes'))}
<h2>Error per method</h2><img src="errors.png"><img src="curves.png">
{'<h2>Training curves</h2><p>One panel per network, its logged losses over the steps (log scale).</p>'
 '<img src="training.png">' if "training.png" in plots else ''}
<h2>Examples</h2><p>One wild test eye per row; each picture names its columns. The mask column is the inferred mask
the methods were given.</p>
<h3>Fixed examples</h3>{pictures_html(fixed_pictures)}
<h3>Worst cases for "{key}"</h3>{pictures_html(worst_pictures)}
{_real_photos_section(results.get('real_photos'))}
<h2>Method descriptions</h2><ul>{descriptions}</ul>
<h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul>
<p>All numbers: <a href="results.json">results.json</a>.</p></body></html>"""
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
