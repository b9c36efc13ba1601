"""The match stage: candidates in, the ones that contain at least one query entry out, with their ids."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wit import schemas
from wit.io import folders
from wit.stage import BatchResult, Stage


def load_queries(path: str) -> tuple[list[str], list[int]]:
    """(queries, ids) of a query list; a list with repeated strings or ids is refused."""
    from wit.queries.validate import check_unique

    t = folders.read_parquet([path], columns=["query_id", "query"])
    queries, ids = t.column("query").to_pylist(), t.column("query_id").to_pylist()
    check_unique(queries, ids, path)
    return queries, ids


@dataclass
class MatchStage(Stage):
    """Adds ``query_ids`` (sorted, each matched entry once); drops ``no_match`` and cross-file ``duplicate``.

    ``duplicates`` names a Parquet file of (uid, part) occurrences to drop, from
    ``counts.later_duplicates`` over the same input list (None: no cross-file duplicates).
    """

    queries: str = ""
    duplicates: str | None = None
    backend: str = "tokens"
    name: str = "match"
    output_schema = schemas.MATCHED

    def setup(self) -> None:
        from wit.match.matcher import Matcher

        entries, ids = load_queries(self.queries)
        self.matcher = Matcher(entries, ids, backend=self.backend)

    def begin_task(self, path: str, index: int) -> None:
        self._drop: pa.Array = pa.array([], pa.string())
        if self.duplicates:  # sorted by part: only this part's row groups are read
            self._drop = folders.read_part(self.duplicates, index, ["uid"]).column("uid").combine_chunks()

    def process_batch(self, batch: pa.Table) -> BatchResult:
        batch = schemas.conform(batch, schemas.CANDIDATES).select(schemas.CANDIDATES.names)
        dup = pc.is_in(batch.column("uid"), value_set=getattr(self, "_drop", pa.array([], pa.string())))
        # a missing caption (null, in a user's own candidates) matches nothing: dropped as no_match
        ids = self.matcher.match_batch(pc.fill_null(batch.column("text").combine_chunks(), "").to_pylist())
        matched = batch.append_column(schemas.MATCHED.field("query_ids"), ids)
        has = pc.greater(pc.list_value_length(ids), 0)
        keep = pc.and_(has, pc.invert(dup))
        no_match = pc.and_(pc.invert(has), pc.invert(dup))
        uids = batch.column("uid")
        dup_uids = pc.filter(uids, dup).to_pylist()
        no_match_uids = pc.filter(uids, no_match).to_pylist()
        drop_uids = dup_uids + no_match_uids
        reasons = ["duplicate"] * len(dup_uids) + ["no_match"] * len(no_match_uids)
        return BatchResult(kept=matched.filter(keep), dropped=BatchResult.drops(drop_uids, reasons))
