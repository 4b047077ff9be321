"""The studies: which paper table each reproduces, its rows, where each value comes from, and the paper's numbers.

A study is a table of cells (row × column). Each cell is a `Measure`: a value read from the outputs of the
user-facing commands run on one or more training runs (a flagfile under `experiments/synthetic/` at a seed):

  top1            `stpa.evaluate --test_frames=K` on the test split, top-1 (%)
  fused           `stpa.fuse` of an RGB and a flow run's test scores, equal weights (the paper's), top-1 (%)
  fused_softmax   the same with each stream's scores soft-maxed first (`stpa.fuse --normalize=softmax`)
  fused_tuned     the same with `--tune_on` the validation set's scores (weights searched there), top-1 (%)
  frame_map       `st_attn.localize`: frame mAP (%) at IoU α = `index`-th threshold, method `method`
  segment_map     `st_attn.localize`: segment mAP (%) at tIoU α = `index`-th threshold, method `method`

`Claim`s are the paper's directions (a cell against a reference cell, expected sign), judged from paired seeds by
`experiments.statistics`. Paper numbers are the paper's results on its real dataset (UCF101 split 1 for STPA;
UCF101 / HMDB51 / UCF101-24 / THUMOS14 for ST-attn), shown beside ours, never compared numerically.
"""

from __future__ import annotations

import dataclasses

KINDS = ("top1", "fused", "fused_softmax", "fused_tuned", "frame_map", "segment_map")
LOCALIZE_METHODS = {
    "frame_map": {"ours": "ST-attn (ours)", "baseline": "Centred box of average GT size"},
    "segment_map": {"ours": "ST-attn (ours)", "baseline": "Whole clip as one segment"},
}
FIG3_TEST_FRAMES = (1, 5, 10, 15, 20, 25, 30)
STPA_TEST_FRAMES = 25
ST_ATTN_FRAMES = 6  # n of the study's ST-attn flagfiles (train and test)
STUDY_CLASSES = 6  # classes of the study benchmark (data.synthetic.STUDY_PRESET_FIELDS): chance 1/6


@dataclasses.dataclass(frozen=True)
class Measure:
    """Where a cell's value comes from (see the module docstring)."""

    kind: str
    runs: tuple[str, ...]  # flagfile stems under experiments/synthetic/ (two for fused: RGB, flow)
    test_frames: int = STPA_TEST_FRAMES
    index: int = 0
    method: str = "ours"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown measure kind {self.kind!r}; choose one of {list(KINDS)}")
        if self.kind.startswith("fused") and len(self.runs) != 2:
            raise ValueError(f"a {self.kind} measure needs two runs (RGB, flow), got {self.runs}")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One value of a study table and the paper's number for it (None: not reported)."""

    row: str
    column: str
    measure: Measure
    paper: float | None = None


@dataclasses.dataclass(frozen=True)
class Claim:
    """The paper's direction: `cell` − `reference` has sign `sign` (+1: the paper found `cell` higher)."""

    cell: tuple[str, str]  # (row, column)
    reference: tuple[str, str]
    sign: int
    paper_says: str


@dataclasses.dataclass(frozen=True)
class Contrast:
    """A descriptive contrast (`experiments.mechanism`): `a` − `b`, or (`a` − `b`) − (`a2` − `b2`), in points.

    Attributes:
      label: what the report calls it.
      a, b: (row, column) cells.
      a2, b2: the second difference's cells (None: a simple difference).
      reading: the pre-registered reading of its interval.
    """

    label: str
    a: tuple[str, str]
    b: tuple[str, str]
    a2: tuple[str, str] | None = None
    b2: tuple[str, str] | None = None
    reading: str = ""


@dataclasses.dataclass(frozen=True)
class Study:
    """A paper table reproduced on the study benchmark."""

    name: str
    title: str
    paper_source: str  # what the paper column is
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[Cell, ...]
    claims: tuple[Claim, ...]
    figure: str = "bars"  # "bars" or "lines" (Fig. 3's K sweep, localisation thresholds)
    unit: str = "top-1 (%)"
    x_label: str = ""  # the line figure's x axis (what the columns are)
    notes: str = ""
    host: str = ""  # the network the study's rows run in, where studies of one protocol differ in it (HOSTS)
    contrasts: tuple[Contrast, ...] = ()  # descriptive contrasts (experiments.mechanism)
    recall_columns: tuple[tuple[str, str, str], ...] = ()  # (column, baseline row, row): per-class recall tables

    def cell(self, row: str, column: str) -> Cell:
        """The cell at (row, column)."""
        for cell in self.cells:
            if (cell.row, cell.column) == (row, column):
                return cell
        raise KeyError(f"{self.name} has no cell ({row!r}, {column!r})")

    def flagfiles(self) -> list[str]:
        """The flagfile stems the study trains, in order of first use (a feature-trained row's trunk run first)."""
        stems: list[str] = []
        for cell in self.cells:
            for stem in cell.measure.runs:
                stems.extend(s for s in (FEATURE_TRUNKS.get(stem), stem) if s and s not in stems)
        return stems


def _top1(stem: str, k: int = STPA_TEST_FRAMES) -> Measure:
    return Measure("top1", (stem,), test_frames=k)


def _fused(rgb: str, flow: str, tuned: bool = False) -> Measure:
    return Measure("fused_tuned" if tuned else "fused", (rgb, flow))


def _better(cell, reference, says) -> Claim:
    return Claim(cell, reference, +1, says)


def _worse(cell, reference, says) -> Claim:
    return Claim(cell, reference, -1, says)


# ------------------------------------------------------------------------------------------------------------ STPA
STREAMS = ("RGB", "Flow")
_MOD = {"RGB": "rgb", "Flow": "flow"}
# Table 1(b) (UCF101 split 1, Inception-ResNet-V2). The markdown of the paper lost the 2- and 3-scale cells; the text
# gives 3 scales as +2.1 / +2.4 over Table 1(e)'s network without the layer (85.2 / 83.1): 87.3 / 85.5.
_T1B = {1: (86.3, 84.0), 2: (None, None), 3: (87.3, 85.5), 4: (86.5, 85.0)}
_SCALES = {n: f"{n} scale" + ("s" if n > 1 else "") for n in (1, 2, 3, 4)}

STPA_TABLE1B = Study(
    name="stpa_table1b",
    title="STPA Table 1(b): number of pyramid scales (topped at the last block, mul fusion, no l_inter / l_attn)",
    paper_source="Du et al. Table 1(b), UCF101 split 1, Inception-ResNet-V2 (2 scales: not legible in our copy; "
    "3 scales from the text: +2.1 / +2.4 over 85.2 / 83.1)",
    rows=tuple(_SCALES.values()),
    columns=STREAMS,
    cells=tuple(
        Cell(_SCALES[n], s, _top1(f"study_stpa_scales{n}_{_MOD[s]}"), _T1B[n][i])
        for n in (1, 2, 3, 4)
        for i, s in enumerate(STREAMS)
    ),
    claims=tuple(
        claim
        for s in STREAMS
        for claim in (
            _better(
                (_SCALES[2], s),
                (_SCALES[1], s),
                "more scales help (text: 'further promoted by increasing the number of scales')",
            ),
            _better((_SCALES[3], s), (_SCALES[1], s), "3 scales > 1 scale (+1.0 / +1.5)"),
            _worse((_SCALES[4], s), (_SCALES[3], s), "the 4th scale hurts (−0.8 / −0.5)"),
        )
    ),
    notes="Pyramid taps of the tiny backbone at 64 px: C 4×4 (top), B 8×8, A 16×16, S 32×32 (the 4th scale, like "
    "IRv2's Conv2d_4a).",
)

_T1C = {"max": 85.7, "sum": 86.4, "mul": 87.3}
_FUSION_NAMES = {"max": "Element-wise Maximum", "sum": "Element-wise Sum", "mul": "Element-wise Multiplication"}
_FUSION_RUNS = {"max": "study_stpa_fusion_max_rgb", "sum": "study_stpa_fusion_sum_rgb", "mul": "study_stpa_scales3_rgb"}
STPA_TABLE1C = Study(
    name="stpa_table1c",
    title="STPA Table 1(c): fusion function F of the per-scale scores (RGB, 3 scales, no l_inter / l_attn)",
    paper_source="Du et al. Table 1(c), UCF101 split 1, Inception-ResNet-V2, RGB",
    rows=tuple(_FUSION_NAMES.values()),
    columns=("RGB",),
    cells=tuple(Cell(_FUSION_NAMES[f], "RGB", _top1(_FUSION_RUNS[f]), _T1C[f]) for f in _FUSION_NAMES),
    claims=(
        _better((_FUSION_NAMES["mul"], "RGB"), (_FUSION_NAMES["max"], "RGB"), "mul > max (+1.6)"),
        _better((_FUSION_NAMES["mul"], "RGB"), (_FUSION_NAMES["sum"], "RGB"), "mul > sum (+0.9)"),
        _better((_FUSION_NAMES["sum"], "RGB"), (_FUSION_NAMES["max"], "RGB"), "sum > max (+0.7)"),
    ),
)

_LOSSES = {"l_inter": "inter", "l_attn": "attn", "no loss": None, "l_inter + l_attn": "both"}
# Table 1(d) and, for "l_inter + l_attn", Table 1(e)'s Inception-ResNet-V2 "3 scales" rows. The flow cells of
# l_inter / l_attn are not legible in our copy of the paper.
_T1D = {
    "RGB": {"l_inter": 87.8, "l_attn": 87.5, "no loss": 87.3, "l_inter + l_attn": 88.2},
    "Flow": {"l_inter": None, "l_attn": None, "no loss": 85.5, "l_inter + l_attn": 86.5},
    "Late fusion": {"l_inter": 94.7, "l_attn": 94.4, "no loss": 94.2, "l_inter + l_attn": 95.1},
    "Late fusion (tuned weights)": {k: None for k in _LOSSES},
}


def _loss_run(loss: str, modality: str) -> str:
    variant = _LOSSES[loss]
    return f"study_stpa_scales3_{modality}" if variant is None else f"study_stpa_loss_{variant}_{modality}"


def _stream_measure(stream: str, rgb: str, flow: str) -> Measure:
    if stream == "RGB":
        return _top1(rgb)
    if stream == "Flow":
        return _top1(flow)
    return _fused(rgb, flow, tuned=stream.endswith("(tuned weights)"))


_D_ROWS = ("RGB", "Flow", "Late fusion", "Late fusion (tuned weights)")
STPA_TABLE1D = Study(
    name="stpa_table1d",
    title="STPA Table 1(d): the loss terms, 3 scales (l_inter + l_attn: Table 1(e))",
    paper_source="Du et al. Table 1(d) and 1(e) (l_inter + l_attn), UCF101 split 1, Inception-ResNet-V2; the paper "
    "fuses with equal weights (tuned weights: not in the paper)",
    rows=_D_ROWS,
    columns=tuple(_LOSSES),
    cells=tuple(
        Cell(row, loss, _stream_measure(row, _loss_run(loss, "rgb"), _loss_run(loss, "flow")), _T1D[row][loss])
        for row in _D_ROWS
        for loss in _LOSSES
    ),
    claims=tuple(
        _better(
            (row, loss),
            (row, "no loss"),
            f"{loss} helps"
            + (f" ({_T1D[row][loss] - _T1D[row]['no loss']:+.1f})" if _T1D[row][loss] and _T1D[row]["no loss"] else ""),
        )
        for row in _D_ROWS[:3]
        for loss in ("l_inter", "l_attn", "l_inter + l_attn")
    ),
    notes="β = γ = 1e-4 as the paper, Eq. 6 read with X as data in Eq. 5's argmin and X X^T / C (the default "
    "--interaction_gradient=attention --interaction_normalization=covariance, BUILD.md fidelity table); runs that "
    "stop on a non-finite loss are counted as failed, not as zeros.",
)

_E_ROWS = (
    "RGB",
    "RGB (3 scales)",
    "Flow",
    "Flow (3 scales)",
    "Late fusion",
    "Late fusion (3 scales)",
    "Late fusion, tuned weights",
    "Late fusion (3 scales), tuned weights",
)
_T1E_IRV2 = (85.2, 88.2, 83.1, 86.5, 92.6, 95.1, None, None)


def _e_measure(row: str) -> Measure:
    stem = "study_stpa_loss_both" if "3 scales" in row else "study_stpa_tsn"  # the flagfile stems without modality
    rgb, flow = f"{stem}_rgb", f"{stem}_flow"
    if row.startswith("RGB"):
        return _top1(rgb)
    if row.startswith("Flow"):
        return _top1(flow)
    return _fused(rgb, flow, tuned=row.endswith("tuned weights"))


STPA_TABLE1E = Study(
    name="stpa_table1e",
    title="STPA Table 1(e): without the layer (TSN) and with it (3 scales, l_inter + l_attn)",
    paper_source="Du et al. Table 1(e), UCF101 split 1, Inception-ResNet-V2 column (equal-weight fusion; tuned "
    "weights: not in the paper)",
    rows=_E_ROWS,
    columns=("tiny",),
    cells=tuple(Cell(row, "tiny", _e_measure(row), paper) for row, paper in zip(_E_ROWS, _T1E_IRV2)),
    claims=(
        _better(("RGB (3 scales)", "tiny"), ("RGB", "tiny"), "the layer helps RGB (+3.0)"),
        _better(("Flow (3 scales)", "tiny"), ("Flow", "tiny"), "the layer helps flow (+3.4)"),
        _better(("Late fusion (3 scales)", "tiny"), ("Late fusion", "tiny"), "the layer helps late fusion (+2.5)"),
        _better(
            ("Late fusion (3 scales), tuned weights", "tiny"),
            ("Late fusion, tuned weights", "tiny"),
            "the layer helps late fusion (tuned weights; not in the paper)",
        ),
    ),
)

_K_COLUMNS = tuple(f"K = {k}" for k in FIG3_TEST_FRAMES)
_TRAIN_K = {"train K = 1": "study_stpa_train_k1_rgb", "train K = 3": "study_stpa_loss_both_rgb"}
STPA_FIG3 = Study(
    name="stpa_fig3",
    title="STPA Fig. 3: K frames for training (rows) and testing (columns), RGB, 3 scales, l_inter + l_attn",
    paper_source="Du et al. Fig. 3 / Sec. 4.2, UCF101 split 1 (the curve's values are not in the text: the paper "
    "states that training with K = 3 beats K = 1 and that accuracy rises with the test K, 95.2 % at K = 30)",
    rows=tuple(_TRAIN_K),
    columns=_K_COLUMNS,
    cells=tuple(Cell(row, f"K = {k}", _top1(stem, k)) for row, stem in _TRAIN_K.items() for k in FIG3_TEST_FRAMES),
    claims=(
        _better(("train K = 3", "K = 25"), ("train K = 1", "K = 25"), "training with K = 3 beats K = 1"),
        _better(("train K = 3", "K = 25"), ("train K = 3", "K = 1"), "more test frames help (K = 25 vs 1)"),
        _better(("train K = 3", "K = 25"), ("train K = 3", "K = 5"), "more test frames help (K = 25 vs 5)"),
        _better(("train K = 3", "K = 30"), ("train K = 3", "K = 25"), "K = 30 is the best"),
    ),
    figure="lines",
    x_label="test frames K (segments sampled per video)",
)

# --------------------------------------------------------------------------------------------------------- ST-attn
_T2 = {  # row: (flagfile, UCF101, HMDB51)
    "Ours": ("study_st_attn_full", 87.11, 53.07),
    "Ours w/o spatial attention": ("study_st_attn_no_spatial", 85.78, 51.98),
    "Ours w/o temporal attention": ("study_st_attn_no_temporal", 85.86, 52.25),
    "Ours w/o L_TV": ("study_st_attn_no_tv", 85.89, 52.01),
    "Ours w/o L_contrast": ("study_st_attn_no_contrast", 85.98, 52.10),
    "Ours w/o L_unimodal": ("study_st_attn_no_unimodal", 86.10, 52.05),
    "No attention (ResNet101-ImageNet row)": ("study_st_attn_no_attention", 83.30, 50.04),
}
ST_ATTN_TABLE2 = Study(
    name="st_attn_table2",
    title="ST-attn Table 2: the full model and its ablations (RGB, n = 6)",
    paper_source="Meng et al. Table 2, UCF101 column (HMDB51 in the notes)",
    rows=tuple(_T2),
    columns=("top-1",),
    cells=tuple(Cell(row, "top-1", _top1(stem, ST_ATTN_FRAMES), ucf) for row, (stem, ucf, _) in _T2.items()),
    claims=tuple(
        _worse((row, "top-1"), ("Ours", "top-1"), f"removing it hurts ({ucf - 87.11:+.2f})")
        for row, (_, ucf, _) in _T2.items()
        if row != "Ours"
    ),
    notes="Paper, HMDB51: " + ", ".join(f"{row} {hmdb}" for row, (_, _, hmdb) in _T2.items()) + ".",
)

ST_ATTN_TABLE4 = Study(
    name="st_attn_table4",
    title="ST-attn Table 4: the attention vs the same trunk without it (RGB)",
    paper_source="Meng et al. Table 4, HMDB51, ResNet101 column (ResNet50: 47.5 → 49.8; ResNet152: 50.4 → 54.4)",
    rows=("w/o attention", "w attention"),
    columns=("tiny",),
    cells=(
        Cell("w/o attention", "tiny", _top1("study_st_attn_no_attention", ST_ATTN_FRAMES), 50.0),
        Cell("w attention", "tiny", _top1("study_st_attn_full", ST_ATTN_FRAMES), 53.1),
    ),
    claims=(_better(("w attention", "tiny"), ("w/o attention", "tiny"), "attention helps (+3.1)"),),
)


# Rows trained on cached features (Meng et al. Sec. 3.1): run stem -> the TSN run whose fine-tuned trunk extracts
# them (experiments.runner adds the st_attn.features step between the two).
FEATURE_TRUNKS: dict[str, str] = {
    **{
        stem: "study_stpa_tsn_rgb"
        for stem in (
            "study_st_attn_chain",
            "study_st_attn_chain_no_spatial",
            "study_st_attn_chain_no_temporal",
            "study_st_attn_chain_average",
            "study_st_attn_chain_matched",
        )
    },
    **{
        stem: "study_host_tsn_rgb"
        for stem in ("study_host_st_attn_chain", "study_host_st_attn_chain_matched", "study_host_st_attn_chain_average")
    },
}
# The `st_attn.features` flagfile that caches a trunk's features (the trunk's backbone); others: FEATURES_FLAGFILE.
FEATURES_FLAGFILE = "study_st_attn_features"
FEATURE_FLAGFILES: dict[str, str] = {"study_host_tsn_rgb": "study_host_st_attn_features"}
# A row trained on the schedule of another row (run stem -> that row's stem); any other row follows the schedule
# group of its own flagfile's --model (experiments.schedules). The ST-attn tables' end-to-end TSN baseline trains as
# long as the heads it is compared with (its flagfile, like theirs: 400 steps), at --quick and at a study schedule too.
SAME_SCHEDULE_AS: dict[str, str] = {"study_st_attn_no_attention": "study_st_attn_full"}

# ---------------------------------------------------------------------------------------- the powered protocol
# experiments/preregistration.md decides its primary claims on these three studies (and the localisation tables).
_PROTOCOL_STPA_ROWS = {  # row: (flagfile stem without the modality, paper RGB, Flow, Late fusion)
    "TSN": ("study_stpa_tsn", 85.2, 83.1, 92.6),
    "Uniform attention": ("study_stpa_uniform", None, None, None),
    "STPA": ("study_stpa_scales3", 87.3, 85.5, 94.2),
}
_PROTOCOL_COLUMNS = ("RGB", "Flow", "Late fusion")
PROTOCOL_STPA = Study(
    name="protocol_stpa",
    title="STPA with its control: TSN, the same pooled-feature head with uniform attention, STPA (3 scales, β = γ = 0)",
    paper_source="Du et al. Table 1(e) (TSN, Inception-ResNet-V2) and Table 1(b)/(d) '3 scales', 'no loss' (STPA), "
    "UCF101 split 1, equal-weight late fusion; the uniform-attention control is not in the paper",
    rows=tuple(_PROTOCOL_STPA_ROWS),
    columns=_PROTOCOL_COLUMNS,
    cells=tuple(
        Cell(row, column, _stream_measure(column, f"{stem}_rgb", f"{stem}_flow"), papers[i])
        for row, (stem, *papers) in _PROTOCOL_STPA_ROWS.items()
        for i, column in enumerate(_PROTOCOL_COLUMNS)
    ),
    claims=tuple(
        claim
        for column in _PROTOCOL_COLUMNS
        for claim in (
            _better(("STPA", column), ("TSN", column), "the layer helps (+2.1 / +2.4 / +1.6)"),
            _better(("STPA", column), ("Uniform attention", column), "the learned attention, not the pooling, helps"),
            _better(("Uniform attention", column), ("TSN", column), "pooling features before the classifier helps"),
        )
    ),
    notes="TSN averages per-frame logits; the uniform row pools tap C's features over K frames and positions with A "
    "fixed uniform (--attention=uniform) into STPA's classifier; STPA learns A. TSN → uniform isolates the pooling, "
    "uniform → STPA the learned attention.",
)

_PROTOCOL_ST_ATTN_ROWS = {  # row: (flagfile stem, paper UCF101 top-1, Meng et al. Table 2)
    "Ours": ("study_st_attn_chain", 87.11),
    "w/o spatial attention": ("study_st_attn_chain_no_spatial", 85.78),
    "w/o temporal attention": ("study_st_attn_chain_no_temporal", 85.86),
    "No attention (average pooling)": ("study_st_attn_chain_average", 83.30),
}
PROTOCOL_ST_ATTN = Study(
    name="protocol_st_attn",
    title="ST-attn Tables 2 and 4 on the paper's chain: fine-tuned trunk → cached features → head (RGB, n = 6)",
    paper_source="Meng et al. Table 2, UCF101 column ('No attention': the ResNet101-ImageNet row, 83.30)",
    rows=tuple(_PROTOCOL_ST_ATTN_ROWS),
    columns=("top-1",),
    cells=tuple(
        Cell(row, "top-1", _top1(stem, ST_ATTN_FRAMES), paper) for row, (stem, paper) in _PROTOCOL_ST_ATTN_ROWS.items()
    ),
    claims=(
        _better(("Ours", "top-1"), ("No attention (average pooling)", "top-1"), "attention helps (+3.81)"),
        _worse(("w/o spatial attention", "top-1"), ("Ours", "top-1"), "removing the mask hurts (−1.33)"),
        _worse(("w/o temporal attention", "top-1"), ("Ours", "top-1"), "removing the temporal attention hurts (−1.25)"),
    ),
    notes="Each seed's four heads train on the same cached features of that seed's TSN RGB run (study_stpa_tsn_rgb); "
    "'No attention' is the mean over frames and positions into the same classifier (--pooling=average). Tables 5-6 "
    "localise the 'Ours' models.",
)

DOSE_COLUMNS = ("0", "1e-4 (paper)", "1e-2", "1")
_DOSE_ROWS = {  # row: flagfile stems for the columns
    "β (l_inter, Eq. 6)": (
        "study_stpa_scales3_rgb",
        "study_stpa_loss_inter_rgb",
        "study_stpa_beta_1e-2_rgb",
        "study_stpa_beta_1_rgb",
    ),
    "γ (l_attn, Eq. 7-8)": (
        "study_stpa_scales3_rgb",
        "study_stpa_loss_attn_rgb",
        "study_stpa_gamma_1e-2_rgb",
        "study_stpa_gamma_1_rgb",
    ),
}
PROTOCOL_DOSE = Study(
    name="protocol_dose",
    title="STPA dose-response of the loss weights β (l_inter) and γ (l_attn), RGB, 3 scales (descriptive)",
    paper_source="Du et al. Table 1(d) at β = γ = 1e-4 (87.8 / 87.5 vs 87.3 with neither), UCF101 split 1, RGB",
    rows=tuple(_DOSE_ROWS),
    columns=DOSE_COLUMNS,
    cells=tuple(
        Cell(row, column, _top1(stem), {"0": 87.3, "1e-4 (paper)": paper}.get(column))
        for row, paper in zip(_DOSE_ROWS, (87.8, 87.5))
        for column, stem in zip(DOSE_COLUMNS, _DOSE_ROWS[row])
    ),
    claims=(),
    figure="lines",
    x_label="loss weight: β for the l_inter line, γ for the l_attn line",
    notes="Descriptive (experiments/preregistration.md): at the paper's 1e-4 the measured terms are < 1 % "
    "(β l_inter) and about 0.3 % (γ l_attn) of the cross-entropy; 1e-2 makes them comparable, 1 dominant. The 0 "
    "column is the STPA row of protocol_stpa.",
)


def _localization_study(
    name: str,
    kind: str,
    thresholds: tuple[float, ...],
    paper: tuple[float, ...],
    title: str,
    source: str,
    baseline_row: str,
    x_label: str,
) -> Study:
    columns = tuple(f"α = {a:g}" for a in thresholds)
    rows = ("ST-attn (ours)", baseline_row)
    cells = []
    for i, column in enumerate(columns):
        cells.append(Cell(rows[0], column, Measure(kind, ("study_st_attn_chain",), index=i, method="ours"), paper[i]))
        cells.append(Cell(rows[1], column, Measure(kind, ("study_st_attn_chain",), index=i, method="baseline")))
    claims = tuple(_better((rows[0], c), (rows[1], c), "the attention localises the action") for c in columns)
    return Study(
        name=name,
        title=title,
        paper_source=source,
        rows=rows,
        columns=columns,
        cells=tuple(cells),
        claims=claims,
        figure="lines",
        unit="mAP (%)",
        x_label=x_label,
        notes=f"The {baseline_row.lower()} is our baseline (not in the paper, which compares with other "
        "methods); the direction checked is that the attention localises better than it.",
    )


ST_ATTN_TABLE5 = _localization_study(
    "st_attn_table5",
    "frame_map",
    (0.05, 0.1, 0.2, 0.3),
    (67.0, 58.2, 40.2, 30.7),
    "ST-attn Table 5: spatial localisation, frame mAP of the mask boxes at IoU α",
    "Meng et al. Table 5, UCF101-24, 'Ours'",
    "Centred box of average GT size",
    "α: IoU threshold of a mask box with the ground-truth box",
)
ST_ATTN_TABLE6 = _localization_study(
    "st_attn_table6",
    "segment_map",
    (0.1, 0.2, 0.3, 0.4, 0.5),
    (70.0, 61.4, 48.6, 32.6, 17.9),
    "ST-attn Table 6: temporal localisation, segment mAP of the attention's segments at tIoU α",
    "Meng et al. Table 6, THUMOS14, 'Ours'",
    "Whole clip as one segment",
    "α: temporal IoU threshold of a segment with the ground-truth segment",
)

# ---------------------------------------------------------- the hosts protocol (experiments/preregistration_hosts.md)
# The same rows on two hosts: `tiny` from scratch (the first protocol's) and `tiny_deep` initialised from the
# still-frame pretraining (a learned stage after the pyramid top, as in the papers' networks).
HOSTS: dict[str, tuple[str, str]] = {  # host: (study-name suffix, description)
    "pretrained": ("pretrained", "tiny_deep, pretrained on still frames (stpa.pretrain_backbone), stage D after tap C"),
    "tiny": ("tiny", "tiny from scratch (the first protocol's host; nothing learned after tap C)"),
}
_HOST_STPA_STEMS = {  # row: {host: flagfile stem without the modality}
    "TSN": {"pretrained": "study_host_tsn", "tiny": "study_stpa_tsn"},
    "Uniform attention": {"pretrained": "study_host_uniform", "tiny": "study_stpa_uniform"},
    "STPA (paper: mul)": {"pretrained": "study_host_stpa", "tiny": "study_stpa_scales3"},
    "STPA (sum, zero-init)": {"pretrained": "study_host_stpa_sum_zero", "tiny": "study_stpa_sum_zero"},
}
HOST_STPA_COLUMNS = ("RGB", "Flow", "RGB (K = 3)", "Flow (K = 3)", "Late fusion", "Late fusion (softmax)")
TRAIN_FRAMES = 3  # K of the STPA / TSN study rows' training clips (--train_frames)


def _host_measure(column: str, stem: str) -> Measure:
    rgb, flow = f"{stem}_rgb", f"{stem}_flow"
    return {
        "RGB": _top1(rgb),
        "Flow": _top1(flow),
        "RGB (K = 3)": _top1(rgb, TRAIN_FRAMES),
        "Flow (K = 3)": _top1(flow, TRAIN_FRAMES),
        "Late fusion": _fused(rgb, flow),
        "Late fusion (softmax)": Measure("fused_softmax", (rgb, flow)),
    }[column]


_ZERO, _MUL, _UNIFORM = "STPA (sum, zero-init)", "STPA (paper: mul)", "Uniform attention"


def _host_contrasts(stream: str) -> tuple[Contrast, ...]:
    """The pre-registered mechanism contrasts of one stream (experiments/preregistration_hosts.md)."""
    k3 = f"{stream} (K = 3)"
    return (
        Contrast(f"{_MUL} − TSN, {stream}", (_MUL, stream), ("TSN", stream)),
        Contrast(
            f"{_ZERO} − {_MUL}, {stream}",
            (_ZERO, stream),
            (_MUL, stream),
            reading="above 0 while the next contains 0: the deficit is the paper's initialisation and fusion",
        ),
        Contrast(
            f"{_ZERO} − {_UNIFORM}, {stream}",
            (_ZERO, stream),
            (_UNIFORM, stream),
            reading="below 0: learned attention hurts even when it starts at the control",
        ),
        Contrast(f"{_MUL} − {_UNIFORM}, {stream}", (_MUL, stream), (_UNIFORM, stream)),
        Contrast(f"{_MUL} − {_UNIFORM}, {k3}", (_MUL, k3), (_UNIFORM, k3)),
        Contrast(
            f"({_MUL} − {_UNIFORM} at K = 3) − (the same at K = 25), {stream}",
            (_MUL, k3),
            (_UNIFORM, k3),
            (_MUL, stream),
            (_UNIFORM, stream),
            reading="above 0: the change of K between training and test carries part of the deficit",
        ),
    )


_FUSION_CONTRASTS = tuple(
    Contrast(f"{row} − TSN, {column}", (row, column), ("TSN", column))
    for column in ("Late fusion", "Late fusion (softmax)")
    for row in (_MUL, _UNIFORM)
)


def _host_stpa_study(host: str) -> Study:
    suffix, description = HOSTS[host]
    return Study(
        name=f"hosts_stpa_{suffix}",
        title=f"STPA, its controls and its initialisation on the {host} host: {description}",
        paper_source="Du et al. Table 1(b)/(e) (UCF101 split 1, Inception-ResNet-V2); the controls are not in it",
        rows=tuple(_HOST_STPA_STEMS),
        columns=HOST_STPA_COLUMNS,
        cells=tuple(
            Cell(row, column, _host_measure(column, stems[host]), papers.get(column))
            for row, stems, papers in (
                (row, stems, {"TSN": {"RGB": 85.2, "Flow": 83.1, "Late fusion": 92.6}}.get(row, {}))
                for row, stems in _HOST_STPA_STEMS.items()
            )
            for column in HOST_STPA_COLUMNS
        ),
        claims=tuple(
            claim
            for column in ("RGB", "Flow")
            for claim in (
                _better(("STPA (paper: mul)", column), ("TSN", column), "the layer helps (+2.1 / +2.4)"),
                _better(("STPA (paper: mul)", column), ("Uniform attention", column), "the learned attention helps"),
                _better(
                    ("STPA (sum, zero-init)", column), ("Uniform attention", column), "attention started at uniform"
                ),
            )
        ),
        host=host,
        contrasts=(*_host_contrasts("Flow"), *_host_contrasts("RGB"), *_FUSION_CONTRASTS),
        recall_columns=(("Flow", "TSN", _MUL), ("RGB", "TSN", _MUL)),
        notes="K = 25 test frames unless the column says K = 3 (the training K). 'STPA (sum, zero-init)' starts "
        "exactly at the uniform control (--fusion=sum --score_init=zeros). Late fusion sums raw scores (the paper's "
        "average); '(softmax)' soft-maxes each stream first.",
    )


_HOST_ST_ATTN_STEMS = {  # row: {host: flagfile stem}
    "Ours": {"pretrained": "study_host_st_attn_chain", "tiny": "study_st_attn_chain"},
    "No attention (matched capacity)": {
        "pretrained": "study_host_st_attn_chain_matched",
        "tiny": "study_st_attn_chain_matched",
    },
    "No attention (average pooling)": {
        "pretrained": "study_host_st_attn_chain_average",
        "tiny": "study_st_attn_chain_average",
    },
}


_MATCHED, _AVERAGE = "No attention (matched capacity)", "No attention (average pooling)"


def _host_st_attn_study(host: str) -> Study:
    suffix, description = HOSTS[host]
    return Study(
        name=f"hosts_st_attn_{suffix}",
        title=f"ST-attn on the paper's chain, the {host} host ({description}): attention at matched capacity",
        paper_source="Meng et al. Table 2, UCF101 ('No attention': the ResNet101-ImageNet row, 83.30)",
        rows=tuple(_HOST_ST_ATTN_STEMS),
        columns=("top-1",),
        cells=tuple(
            Cell(row, "top-1", _top1(stems[host], ST_ATTN_FRAMES), {"Ours": 87.11}.get(row))
            for row, stems in _HOST_ST_ATTN_STEMS.items()
        ),
        claims=(
            _better(("Ours", "top-1"), ("No attention (matched capacity)", "top-1"), "attention helps"),
            _better(("Ours", "top-1"), ("No attention (average pooling)", "top-1"), "attention helps (+3.81)"),
        ),
        host=host,
        contrasts=(
            Contrast("Ours − No attention (average pooling)", ("Ours", "top-1"), (_AVERAGE, "top-1")),
            Contrast(
                "No attention (matched capacity) − No attention (average pooling)",
                (_MATCHED, "top-1"),
                (_AVERAGE, "top-1"),
                reading="the capacity of the head without any attention",
            ),
        ),
        notes="Each seed's heads train on the cached features of that seed's TSN RGB run on the host. 'Matched "
        "capacity' is the head of 'Ours' without the mask and without temporal attention (the ConvLSTM reads frame t "
        "at step t); 'average pooling' is the first protocol's baseline (a linear classifier on the mean feature).",
    )


HOSTS_STPA_PRETRAINED = _host_stpa_study("pretrained")
HOSTS_STPA_TINY = _host_stpa_study("tiny")
HOSTS_ST_ATTN_PRETRAINED = _host_st_attn_study("pretrained")
HOSTS_ST_ATTN_TINY = _host_st_attn_study("tiny")

# The benchmark's difficulty check: the TSN RGB baseline's top-1 (must be clearly below the ceiling, above chance).
TSN_BASELINE = Measure("top1", ("study_stpa_tsn_rgb",))

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        STPA_TABLE1B,
        STPA_TABLE1C,
        STPA_TABLE1D,
        STPA_TABLE1E,
        STPA_FIG3,
        ST_ATTN_TABLE2,
        ST_ATTN_TABLE4,
        ST_ATTN_TABLE5,
        ST_ATTN_TABLE6,
        PROTOCOL_STPA,
        PROTOCOL_ST_ATTN,
        PROTOCOL_DOSE,
        HOSTS_STPA_PRETRAINED,
        HOSTS_STPA_TINY,
        HOSTS_ST_ATTN_PRETRAINED,
        HOSTS_ST_ATTN_TINY,
    )
}


def select(names: str) -> list[Study]:
    """The studies named in a comma-separated list, or all of them for "all"."""
    if names == "all":
        return list(STUDIES.values())
    chosen = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in STUDIES:
            raise ValueError(f"unknown study {name!r}; choose from {sorted(STUDIES)} or 'all'.")
        chosen.append(STUDIES[name])
    if not chosen:
        raise ValueError(f"--study is empty; choose from {sorted(STUDIES)} or 'all'.")
    return chosen
