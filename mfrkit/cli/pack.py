"""``mfrkit pack``: aligned face crops of a dataset in memory-mapped shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..jobs import ExecutorSpec
from ..packs.write import PackConfig
from .app import app, console
from .common import counts_text
from .declare import with_config


@app.command()
@with_config(ExecutorSpec, into="executor")
@with_config(PackConfig)
def pack(
    src: Annotated[str, typer.Option("--src", help="Registered dataset name, manifest, or dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Pack folder (a rerun with the same options resumes).")],
    config: PackConfig,
    executor: ExecutorSpec,
) -> None:
    """Align every image of a dataset once and store the crops in shards that training and the bench memory-map."""
    from ..packs.write import write_pack

    s = write_pack(src, out, config, executor=executor, progress=True)
    origin = f"; landmarks: {counts_text(s.landmarks_from)}" if s.landmarks_from else ""
    console.print(f"pack: {s.n_images} images ({counts_text(s.counts)}{origin}) -> {s.out}", highlight=False)
    console.print(f"{s.shards_written} shard(s) written, {s.shards_reused} found done, {s.bytes / 2**20:.1f} MiB, {s.seconds:.1f} s", highlight=False)
