"""Frozen config models; YAML specs in queries/ and pipelines/ load into them.

Unknown keys and bad values raise ``ConfigError`` naming the key (``balance.t: ...``).
Each stage section is owned by its package; a run spec lists the steps to run, in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator

from wit import graph
from wit.errors import UserError


class ConfigError(UserError, ValueError):
    """A spec that does not load: unknown key, wrong type or value out of range."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldConfig(Strict):
    """The synthetic mini-web (wit/world) the demo and tests run on."""

    size: Literal["tiny", "small"] = "tiny"
    seed: int = 0


class QueriesConfig(Strict):
    wikipedia: list[str] = Field(default_factory=list, description="pages-articles XML .bz2 dumps")
    pageviews: list[str] = Field(default_factory=list, description="hourly pageview .gz files")
    wordnet: bool = True
    unigram_min: int = Field(100, ge=1)
    pmi_min: float = 30.0
    bigram_min_count: int = Field(1, ge=1, description="bigrams seen fewer times are not scored")
    views_min: int = Field(70, ge=0)
    hourly_views_min: int = Field(50, ge=0)
    budget: int = Field(500_000, ge=1)
    budget_mode: Literal["cut", "whole"] = Field(
        "cut", description="cut: the list stops at budget; whole: every source added whole (MetaCLIP's script)")
    task_mb: float = Field(64.0, gt=0, description="compressed MB per counting task (multistream dumps)")
    stride_parts: int = Field(1, ge=1, description="page-stride tasks per single-stream dump")
    buckets: int = Field(16, ge=1, description="hash buckets of the spilled counts (merge memory / buckets)")
    spill_rows: int = Field(2_000_000, ge=1, description="counter keys per task before spilling to disk")
    spill_compression: Literal["none", "lz4", "zstd"] = Field(
        "none", description="of the spilled counts (Arrow IPC): none is fastest, zstd ~2.5x smaller on disk")
    batch_rows: int = Field(1024, ge=1, description="pages cleaned and counted per batch")


class CandidatesConfig(Strict):
    inputs: list[str] = Field(default_factory=list)
    format: Literal["wat", "warc", "parquet", "csv"] = "wat"
    url_col: str = "url"
    text_col: str = "text"
    page_url_col: str | None = Field(None, description="list column holding the page URL, if any")
    max_text_chars: int = Field(1000, ge=1)
    source: str | None = Field(None, description="value of the source column (default: the format)")


class MatchConfig(Strict):
    backend: Literal["tokens", "ahocorasick_rs", "pyahocorasick"] = Field(
        "tokens", description="matching engine: a word-level trie (tokens) or an Aho-Corasick library (docs/match.md)")


class BalanceConfig(Strict):
    t: int = Field(20_000, ge=1)
    oversample: float = Field(1.0, gt=0)
    mode: Literal["metaclip", "hardcap"] = "metaclip"
    seed: int = 0
    counts: str = Field("pool", min_length=1, description=(
        "entry counts for p_e: pool (matched/entry_counts.parquet, Algorithm 1 over the pool), "
        "recount (over this pass's input; not Algorithm 1 after download), or a Parquet path"))


class DownloadConfig(Strict):
    #: fields that change how fast the step runs, never what it writes: a resumed run may retune them
    SPEED_ONLY: ClassVar[frozenset[str]] = frozenset({"processes", "threads", "decode_threads"})
    image_size: int = Field(256, ge=8)
    resize_mode: Literal["no", "keep_ratio", "center_crop", "border"] = "keep_ratio"
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0)
    per_host_concurrency: int = Field(8, ge=1)
    honor_robots: bool = True
    max_bytes: int = Field(20_000_000, ge=1)
    processes: int = Field(1, ge=1)
    threads: int = Field(16, ge=1)
    per_host_qps: float = Field(0.0, ge=0, description="max request starts/s per host (0: no limit)")
    host_limit: Literal["global", "worker"] = Field(
        "global", description="ray runner: per-host limits shared by all workers (broker actors) or per worker")
    host_limit_shards: int = Field(1, ge=1, description="broker actors for host_limit global (hosts hashed over them)")
    host_lease_ttl: float = Field(300.0, gt=0, description="s a request slot may be held before the broker reclaims it")
    backoff: float = Field(0.5, ge=0, description="first retry delay in s; doubles each retry")
    max_redirects: int = Field(5, ge=0)
    max_pixels: int = Field(50_000_000, ge=1, description="header check before decode (decompression bombs)")
    decode_threads: int = Field(
        0, ge=0, description="of a worker's fetch threads, how many decode/resize/hash at once (0: its usable CPU cores); "
                             "the rest wait for a turn instead of contending for the GIL")
    decode_pixel_budget: int = Field(
        100_000_000, ge=1, description="pixels a worker decodes at once (memory bound); a larger image decodes alone")
    allow_private_networks: bool = Field(
        False, description="fetch from loopback/private/link-local/CGNAT addresses (the mini-web and tests only)")
    allowed_networks: list[str] = Field(
        default_factory=list, description="CIDRs exempt from the private-address guard, e.g. an in-house mirror")

    @field_validator("allowed_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return v
    encode_quality: int = Field(95, ge=1, le=100)
    decoder: Literal["fast", "img2dataset"] = "fast"
    user_agent_token: str = "wit"


class FilterConfig(Strict):
    min_side: int = Field(32, ge=1)
    max_aspect: float = Field(3.0, ge=1)
    max_pixels: int = Field(50_000_000, ge=1)
    min_caption_chars: int = Field(2, ge=0)
    max_caption_chars: int = Field(1000, ge=1)
    nsfw_model: str | None = None
    clip_model: str | None = None
    clip_min_score: float = 0.0
    nsfw_max_score: float = Field(0.5, ge=0, le=1)


class DedupeConfig(Strict):
    eval: dict[str, str] = Field(default_factory=dict, description="eval set name -> path")
    phash_threshold: int = Field(10, ge=0, le=64)
    thresholds: dict[str, int] = Field(default_factory=dict, description="per eval set pHash distance")
    match_flips: bool = True
    within_dataset: bool = True
    within_threshold: int = Field(4, ge=0, le=64)
    enabled: bool = True
    crop_variants: bool = Field(True, description="index pHashes of 19 crops of each eval image")
    rotation_variants: bool = Field(True, description="index pHashes of +-4/8 degree rotations of each eval image")
    centre_hash: bool = Field(True, description="match centre-region pHashes too (overlays, borders); decodes the JPEG")
    dihedral_variants: bool = Field(False, description="index pHashes of vflip/90/180/270-degree turns and "
                                                       "rotations all round (4-degree steps, framed to the "
                                                       "corner-free rectangle)")
    warp_variants: bool = Field(False, description="index pHashes of large crops (half of each side, 9 places) "
                                                   "and shears (factors 0.2-0.7) of each eval image")
    keypoints: bool = Field(False, description="index ORB keypoints of each eval image and match candidates no "
                                               "other descriptor matched by keypoints and a homography (copies "
                                               "pasted onto backgrounds or screenshots, overlaid, striped, "
                                               "warped); decodes every image, ~12 ms each")
    shuffled: bool = Field(False, description="index the colour histogram of each eval image's pixel-shuffled "
                                              "copy and match images that look shuffled by it; decodes every image")
    model: str | None = Field(None, description="open_clip model name for embedding matching (with checkpoint)")
    checkpoint: str | None = Field(None, description="local open_clip checkpoint; without it no embeddings")
    embed_threshold: float | None = Field(None, ge=-1, le=1, description="cosine; None: the index's")
    embed_thresholds: dict[str, float] = Field(default_factory=dict, description="per eval set cosine")
    embed_batch: int = Field(64, ge=1)


class ShardConfig(Strict):
    samples_per_shard: int = Field(1000, ge=1)


class TrainConfig(Strict):
    model: str = "wit-vit-tiny"
    steps: int = Field(200, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-4, gt=0)
    warmup: int = Field(20, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    workers: int = Field(2, ge=0, description="data loader workers")
    ray_workers: int = Field(0, ge=0, description="0: train in-process; N: Ray Train with N workers")
    seed: int = 0
    shuffle_buffer: int = Field(1000, ge=1, description="samples each loader worker mixes")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16/fp16 on CUDA, fp32 on CPU")
    pretrained: str | None = Field(None, description="local open_clip checkpoint to start from")
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    templates: str | None = Field(None, description="zero-shot templates JSON (CLIP_benchmark format or a list)")
    eval: dict[str, str] = Field(default_factory=dict, description="zero-shot eval set name -> ImageFolder dir "
                                 "(default: the world's)")


class OverlapConfig(Strict):
    eval: dict[str, str] = Field(default_factory=dict, description="eval set name -> path (default: the world's)")
    thresholds: dict[str, int] = Field(default_factory=dict, description="per eval set pHash distance")
    default_threshold: int | None = Field(None, ge=0, le=64, description="None: the detector's calibrated value")
    templates: str | None = Field(None, description="zero-shot prompt templates JSON (CLIP_benchmark format)")
    use_sidecar: bool = Field(True, description="read pHashes from the Parquet beside each shard tar "
                                                "(copy_detector false only: the detector decodes every image)")
    copy_detector: bool = Field(True, description="also run dedupe's copy detector (its eval index rows per "
                                                  "dedupe's settings, mirrors, centre region, edge bands) on every "
                                                  "training image; false: the nearest pHash alone")
    pairs: int = Field(8, ge=0, description="closest and borderline pairs shown per set in report.html")
    checkpoint: str | None = Field(None, description="learned copy detector (none: dedupe.checkpoint, so the "
                                                     "overlap split and the dedupe use one detector)")
    model: str | None = Field(None, description="open_clip model of checkpoint (none: dedupe.model; none there: "
                                                "a TorchScript copy descriptor)")
    embed_threshold: float | None = Field(None, ge=-1, le=1, description="cosine (none: dedupe.embed_threshold, "
                                                                          "else the checkpoint's calibrated one)")


class RayConfig(Strict):
    """Ray's storage limits and the global steps' shuffle (``runner: ray``); see docs/capacity.md."""

    object_store_memory: ByteSize | None = Field(
        None, description="object store per node when wit starts Ray itself, e.g. 4GB (none: Ray's default, "
                          "30% of RAM); a cluster sets it with `ray start --object-store-memory`")
    spill_dir: str | None = Field(None, description="where a local Ray spills objects (none: /tmp/ray)")
    disk_full_fraction: float | None = Field(
        None, gt=0, le=1, description="share of the spill disk past which Ray refuses new objects (Ray's "
                                      "local_fs_capacity_threshold, default 0.95)")
    max_inline_bytes: int = Field(
        1024, ge=0, description="task results up to this size stay in the submitting process's memory, larger "
                                "ones go to the object store (Ray's max_direct_call_object_size; its default "
                                "100 KiB put whole shuffles in the driver)")
    malloc_arenas: int | None = Field(
        2, ge=1, description="MALLOC_ARENA_MAX of a threaded stage's Ray actors (download; none: glibc's 8 x "
                             "cores): its threads otherwise leave memory spread over many arenas, and the actor "
                             "grows with the tasks it runs")
    shuffle_partitions: int | None = Field(
        None, ge=1, description="reduce tasks per global shuffle (none: rows / rows_per_partition, >= 2 x CPUs)")
    rows_per_partition: int = Field(2_000_000, ge=1, description="input rows per reduce task: sets its memory")
    task_attempts: int = Field(3, ge=1, description="tries per global-step task before the step fails")


STEP_NAMES = graph.NAMES


class RunSpec(Strict):
    """A pipeline spec: which steps to run, in order, and each step's config."""

    name: str = "run"
    seed: int = 0
    runner: Literal["local", "ray"] = "local"
    address: str | None = None
    steps: list[str] = Field(default_factory=lambda: list(STEP_NAMES))
    world: WorldConfig | None = None
    queries: QueriesConfig = QueriesConfig()
    candidates: CandidatesConfig = CandidatesConfig()
    match: MatchConfig = MatchConfig()
    balance: BalanceConfig = BalanceConfig()
    download: DownloadConfig = DownloadConfig()
    filter: FilterConfig = FilterConfig()
    dedupe: DedupeConfig = DedupeConfig()
    balance_final: BalanceConfig = BalanceConfig()
    shard: ShardConfig = ShardConfig()
    train: TrainConfig = TrainConfig()
    overlap: OverlapConfig = OverlapConfig()
    ray: RayConfig = RayConfig()

    def model_post_init(self, _: Any) -> None:
        bad = [s for s in self.steps if s not in STEP_NAMES]
        if bad:
            raise ValueError(f"steps: unknown step(s) {bad}; known: {list(STEP_NAMES)}")


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid spec {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_model(model: type[BaseModel], data: dict | None, source: str = "<dict>") -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None
    except ValueError as err:
        raise ConfigError(f"invalid spec {source}: {err}") from None


def load_yaml(path: str | Path, model: type[BaseModel] = RunSpec, overrides: dict | None = None) -> Any:
    """Load a YAML spec into ``model``; ``overrides`` (dotted keys) win over the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"spec not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"spec {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"spec {path}: top level must be a mapping, got {type(data).__name__}")
    for key, value in (overrides or {}).items():
        node = data
        *head, last = key.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = value
    return load_model(model, data, str(path))
